/* The floor of rnohup without libc (docs/benchmarks.md, "Floors"): isatty x3 (TCGETS), SIGHUP ignored, execvp over PATH, raw system calls. Build: gcc -O2 -static -nostdlib -fno-stack-protector -o N wrapper-nolibc.c */

#include <stddef.h>
static long sc(long n, long a, long b, long c, long d) {
  long r; register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx","r11","memory");
  return r;
}
struct ksa { void *h; unsigned long fl; void *rest; unsigned long mask; };
static char buf[4096];
void __attribute__((used)) cmain(long *sp) {
  long argc = sp[0]; char **argv = (char**)(sp+1); char **envp = argv + argc + 1;
  char t[64];
  for (int fd=0; fd<3; fd++) sc(16, fd, 0x5401, (long)t, 0);
  struct ksa sa = { (void*)1, 0x04000000, 0, 0 };
  sc(13, 1, (long)&sa, 0, 8);
  const char *p = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (char **e = envp; *e; e++) if ((*e)[0]=='P'&&(*e)[1]=='A'&&(*e)[2]=='T'&&(*e)[3]=='H'&&(*e)[4]=='=') p = *e+5;
  const char *f = argv[1];
  int slash = 0; for (const char *q=f; *q; q++) if (*q=='/') slash=1;
  if (slash) sc(59, (long)f, (long)(argv+1), (long)envp, 0);
  else for (;;) {
    const char *s = p; size_t n = 0; while (s[n] && s[n] != ':') n++;
    size_t i = 0; for (; i<n; i++) buf[i]=s[i]; buf[i++]='/';
    for (const char *q=f; *q; q++) buf[i++]=*q; buf[i]=0;
    sc(59, (long)buf, (long)(argv+1), (long)envp, 0);
    if (!s[n]) break; p = s+n+1;
  }
  sc(60, 127, 0, 0, 0);
}
__asm__(".globl _start\n_start:\n mov %rsp,%rdi\n and $-16,%rsp\n call cmain\n hlt\n");
