/* Preloaded by bench/callgrind.sh so that runs under callgrind repeat exactly: time() and
 * getrandom() (also as syscall(SYS_getrandom), as LuaJIT asks) answer from the seed in
 * HS_SEED. Lua 5.x seeds its string hashes with time(), LuaJIT and Rust's HashMap with random
 * bytes, and the module draws session ids from getrandom(): with another seed each run, the
 * same code counted up to 2% more or fewer instructions per request. Never for anything but
 * measuring: the "random" bytes are a xorshift sequence. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>

static unsigned long seed(void) {
  const char *s = getenv("HS_SEED");
  return s ? strtoul(s, 0, 10) : 1;
}

time_t time(time_t *t) {
  time_t v = (time_t) (1764460800 + seed());
  if (t) *t = v;
  return v;
}

ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
  static unsigned long x;
  unsigned char *p = buf;
  size_t k;
  (void) flags;
  if (!x) x = 0x9e3779b97f4a7c15UL * (seed() + 1);
  for (k = 0; k < len; k++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[k] = (unsigned char) x;
  }
  return (ssize_t) len;
}

long syscall(long n, ...) {
  static long (*real)(long, ...);
  va_list ap;
  long a[6];
  int i;
  va_start(ap, n);
  for (i = 0; i < 6; i++) a[i] = va_arg(ap, long);
  va_end(ap);
  if (n == SYS_getrandom) return getrandom((void *) a[0], (size_t) a[1], (unsigned int) a[2]);
  if (!real) real = (long (*)(long, ...)) dlsym(RTLD_NEXT, "syscall");
  return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
