/* The floor of what detach does: fork, setsid, fork, wait for the exec (close-on-exec pipe), pidfile written atomically. */
#define _GNU_SOURCE
#include <unistd.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <string.h>
int main(int c, char **v) {
  int p[2]; pipe2(p, O_CLOEXEC);
  pid_t a = fork();
  if (a == 0) {
    setsid();
    pid_t b = fork();
    if (b == 0) { int fd = open("/dev/null", O_RDWR); dup2(fd,0); dup2(fd,1); dup2(fd,2); execv(v[2], v+2); _exit(127); }
    write(p[1], &b, sizeof b); _exit(0);
  }
  close(p[1]);
  pid_t b; read(p[0], &b, sizeof b);
  char buf[64]; int n = snprintf(buf, sizeof buf, "%d\n", b);
  char tmp[4096]; snprintf(tmp, sizeof tmp, "%s.tmp", v[1]);
  int fd = open(tmp, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644); write(fd, buf, n); close(fd); rename(tmp, v[1]);
  char x; while (read(p[0], &x, 1) > 0) {}
  waitpid(a, 0, 0);
  return 0;
}
