// systemd's notify protocol: one datagram to $NOTIFY_SOCKET ("@" = abstract
// namespace). Node's dgram cannot send unix datagrams, hence native code.
#pragma once

#include <string>
#include <vector>

namespace vswitchd {

// false when there is no $NOTIFY_SOCKET or the datagram did not go out.
bool sdNotify(const std::string& state);
// The same with file descriptors attached (SCM_RIGHTS), as FDSTORE=1 needs.
bool sdNotifyWithFds(const std::string& state, const std::vector<int>& fds);

// Replaces the process with `file argv` (a restart in place), the fds put at
// 3, 4, ... and announced as systemd announces its fd store to a new start:
// LISTEN_PID (this pid), LISTEN_FDS, LISTEN_FDNAMES (names joined with ':').
// Returns only on failure (errno).
int reexecWithFds(const std::string& file, const std::vector<std::string>& argv, const std::vector<int>& fds,
                  const std::vector<std::string>& names);

}  // namespace vswitchd
