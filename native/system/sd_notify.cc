#include "system/sd_notify.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace vswitchd {

bool sdNotify(const std::string& state) { return sdNotifyWithFds(state, {}); }

bool sdNotifyWithFds(const std::string& state, const std::vector<int>& fds) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || !*path || std::strlen(path) >= sizeof(sockaddr_un::sun_path)) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + std::strlen(path));
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  iovec iov{const_cast<char*>(state.data()), state.size()};
  msghdr msg{};
  msg.msg_name = &addr;
  msg.msg_namelen = len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const bool ok = sendmsg(fd, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(state.size());
  close(fd);
  return ok;
}

int reexecWithFds(const std::string& file, const std::vector<std::string>& argv, const std::vector<int>& fds,
                  const std::vector<std::string>& names) {
  // Copies above every target first, so no dup2 below overwrites a source.
  std::vector<int> high;
  for (int fd : fds) {
    const int h = fcntl(fd, F_DUPFD_CLOEXEC, 3 + static_cast<int>(fds.size()));
    if (h < 0) return -errno;
    high.push_back(h);
  }
  for (size_t i = 0; i < high.size(); i++)
    if (dup2(high[i], 3 + static_cast<int>(i)) < 0) return -errno;  // dup2 clears FD_CLOEXEC on the copy
  // Nothing else crosses into the new image (inherited fds have no FD_CLOEXEC).
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(dir)) {
      const int fd = atoi(e->d_name);
      if (fd >= 3 + static_cast<int>(fds.size()) && fd != dirfd(dir)) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    closedir(dir);
  }
  for (int fd = 0; fd < 3; fd++) fcntl(fd, F_SETFD, 0);  // stdio goes on (Node marks it close-on-exec)
  std::string joined;
  for (size_t i = 0; i < names.size(); i++) joined += (i ? ":" : "") + names[i];
  setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
  setenv("LISTEN_FDS", std::to_string(fds.size()).c_str(), 1);
  setenv("LISTEN_FDNAMES", joined.c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(file.c_str(), args.data());
  return -errno;
}

}  // namespace vswitchd
