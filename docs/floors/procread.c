/* The floor of rjobs -A's reading: every /proc/PID/stat and /proc/PID/cmdline, one buffer, openat on /proc. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  int proc = open("/proc", O_RDONLY|O_DIRECTORY);
  DIR *d = fdopendir(dup(proc)); struct dirent *e; char path[64], buf[4096]; long n = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "%s/stat", e->d_name);
    int fd = openat(proc, path, O_RDONLY|O_CLOEXEC); if (fd >= 0) { n += read(fd, buf, sizeof buf); close(fd); }
    snprintf(path, sizeof path, "%s/cmdline", e->d_name);
    fd = openat(proc, path, O_RDONLY|O_CLOEXEC); if (fd >= 0) { n += read(fd, buf, sizeof buf); close(fd); }
  }
  printf("%ld\n", n); return 0;
}
