/* wrapper-nolibc.c plus the file system part of a job record: create a temporary in $REC, write 220 bytes, fchmod, rename (docs/benchmarks.md, "Floors"). Build as wrapper-nolibc.c. */

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
  { /* the record's file system work only: create a temporary, write, rename (dir from env REC) */
    const char *dir = 0; for (char **e = envp; *e; e++) if ((*e)[0]=='R'&&(*e)[1]=='E'&&(*e)[2]=='C'&&(*e)[3]=='=') dir = *e+4;
    if (dir) { long d = sc(257, -100, (long)dir, 010000000|0200000, 0); char t[64]; char n[64]; long pid = sc(39,0,0,0,0);
      int i=0; t[i++]='.'; long q=pid; char dg[20]; int k=0; do { dg[k++]='0'+q%10; q/=10; } while(q); while(k) t[i++]=dg[--k]; t[i]=0;
      for (int j=0;j<=i;j++) n[j]=t[j+1];
      long fd = sc(257, d, (long)t, 01|0100|0200|0400000|02000000, 0600);
      char rec[220]; for (int j=0;j<220;j++) rec[j]='x'; sc(1, fd, (long)rec, 220, 0); sc(91, fd, 0600, 0, 0);
      sc(264, d, (long)t, d, (long)n); sc(3, fd,0,0,0); sc(3,d,0,0,0); } }
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
