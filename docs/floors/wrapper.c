/* The floor of rnohup: what every nohup does, nothing more (docs/benchmarks.md, "Floors"). Build: cc -O2 -static -o W wrapper.c */
#include <unistd.h>
#include <signal.h>
int main(int c, char **v) { isatty(0); isatty(1); isatty(2); signal(SIGHUP, SIG_IGN); execvp(v[1], v+1); return 127; }
