// systemd's notify protocol: one datagram to $NOTIFY_SOCKET ("@" = abstract
// namespace). Node's dgram cannot send unix datagrams, hence native code.
#pragma once

#include <string>

namespace vswitchd {

// false when there is no $NOTIFY_SOCKET or the datagram did not go out.
bool sdNotify(const std::string& state);

}  // namespace vswitchd
