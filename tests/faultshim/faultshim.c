/*
 * faultshim: an LD_PRELOAD library that makes file-system calls on chosen files fail, for the
 * fault-injection test (tests/integration/faults.rs) and benches/faults.sh.
 *
 * Only files under the folders in FAULTSHIM_ROOTS (colon-separated absolute paths) are touched:
 * the daemon's sockets, pipes, eventfds and everything else run normally, so what is tested is
 * what the disk's refusals do, not a runtime whose wake-ups fail.
 *
 * FAULTSHIM_CTL names a control file of struct ctl (below), shared with the process that
 * drives the faults (it writes `sites`, `ppm` and `err` at any time; the shim reads them at
 * every call and counts the calls it saw and failed). With `sites` = 0 nothing fails.
 *
 * Sites (bit = 1 << site):
 *   0 open   open, open64, openat, openat64, creat (dup, dup2, dup3 and fcntl F_DUPFD
 *            carry a tracked fd over to its copy)
 *   1 read   read, pread, pread64, readv
 *   2 write  write, pwrite, pwrite64, writev
 *   3 fsync  fsync, fdatasync, syncfs
 *   4 rename rename, renameat, renameat2
 *   5 trunc  ftruncate, ftruncate64
 *   6 unlink unlink, unlinkat, rmdir
 *   7 mkdir  mkdir, mkdirat
 * A failure returns -1 with errno = `err` (ENOSPC, EIO, EACCES, ...) before the real call is
 * made, so nothing of it happened: the call is refused, as a full or failing disk refuses.
 *
 * Power loss (FAULTSHIM_UNDO names a folder outside the roots): the shim keeps an undo log
 * of what the process changed on the roots and has not yet made durable, as a disk without a
 * battery would lose it. Records, one per line in UNDO/log, data copies in UNDO/N:
 *   F DEV INO N          the file's content before its first change since its last fsync
 *   S DEV INO            fsync/fdatasync of that file: its earlier F records are durable
 *   E DEV INO NAME KIND  an entry of folder DEV:INO before a change to it (a create, rename,
 *                        unlink, link, mkdir, rmdir) since the folder's last fsync; KIND is
 *                        `-` (absent), `d` (a folder), or `f N` (a file, its content in UNDO/N)
 *   D DEV INO            fsync of that folder: its earlier E records are durable
 *   A                    syncfs: everything before is durable
 * NAME is hex. The reader (tests/integration/power.rs) undoes, newest first, every record not
 * made durable by a later S, D or A, after the process was killed: what a power cut between
 * the last call and the next would have left.
 *
 * Build: cc -shared -fPIC -O2 -o faultshim.so faultshim.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define NSITES 8
#define MAGIC 0x31485346u /* "FSH1" */
#define MAXFD 65536
#define MAXROOTS 16

struct ctl {
    uint32_t magic;
    uint32_t sites;
    uint32_t ppm;
    int32_t err;
    uint64_t seen[NSITES];
    uint64_t injected[NSITES];
};

enum { S_OPEN, S_READ, S_WRITE, S_FSYNC, S_RENAME, S_TRUNC, S_UNLINK, S_MKDIR };

static struct ctl *ctl;
static char *roots[MAXROOTS];
static size_t root_len[MAXROOTS];
static int nroots;
/* 1 where the fd was opened on a path under a root. */
static unsigned char tracked[MAXFD];

static void undo_init(void);

__attribute__((constructor)) static void init(void) {
    const char *r = getenv("FAULTSHIM_ROOTS");
    if (r) {
        char *copy = strdup(r);
        for (char *save = NULL, *tok = strtok_r(copy, ":", &save); tok && nroots < MAXROOTS;
             tok = strtok_r(NULL, ":", &save)) {
            size_t n = strlen(tok);
            while (n > 1 && tok[n - 1] == '/') tok[--n] = 0;
            roots[nroots] = tok;
            root_len[nroots] = n;
            nroots++;
        }
    }
    undo_init();
    const char *c = getenv("FAULTSHIM_CTL");
    if (c) {
        int fd = (int)syscall(__NR_openat, AT_FDCWD, c, O_RDWR | O_CLOEXEC, 0);
        if (fd >= 0) {
            void *m = mmap(NULL, sizeof(struct ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (m != MAP_FAILED && ((struct ctl *)m)->magic == MAGIC) ctl = m;
            syscall(__NR_close, fd);
        }
    }
}

static char undo_dir[PATH_MAX];
static int undo_log = -1;
static pthread_mutex_t undo_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long undo_seq;
/* Files changed since their last fsync (their F record is written), a small open table. */
#define DIRTY 4096
static struct { dev_t dev; ino_t ino; } dirty[DIRTY];

static void undo_init(void) {
    const char *u = getenv("FAULTSHIM_UNDO");
    if (!u || !*u) return;
    snprintf(undo_dir, sizeof undo_dir, "%s", u);
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/log", undo_dir);
    undo_log = (int)syscall(__NR_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static int under_roots(const char *path) {
    for (int i = 0; i < nroots; i++) {
        size_t n = root_len[i];
        if (strncmp(path, roots[i], n) == 0 && (path[n] == '/' || path[n] == 0)) return 1;
    }
    return 0;
}

/* Whether `path` (relative to `dirfd`) names something under a root. */
static int tracked_path(int dirfd, const char *path) {
    if (!nroots || !path) return 0;
    if (path[0] == '/') return under_roots(path);
    if (dirfd != AT_FDCWD) return dirfd >= 0 && dirfd < MAXFD && tracked[dirfd];
    char cwd[PATH_MAX], full[PATH_MAX * 2];
    if (!getcwd(cwd, sizeof cwd)) return 0;
    snprintf(full, sizeof full, "%s/%s", cwd, path);
    return under_roots(full);
}

static int tracked_fd(int fd) { return fd >= 0 && fd < MAXFD && tracked[fd]; }

/* Raw calls, so that the shim's own I/O is neither tracked nor refused. */
static ssize_t raw_write(int fd, const void *b, size_t n) { return syscall(__NR_write, fd, b, n); }
static ssize_t raw_pread(int fd, void *b, size_t n, off_t o) { return syscall(__NR_pread64, fd, b, n, o); }
static int raw_open(const char *p, int flags, mode_t m) { return (int)syscall(__NR_openat, AT_FDCWD, p, flags, m); }
static int raw_close(int fd) { return (int)syscall(__NR_close, fd); }

static void undo_line(const char *line) {
    size_t n = strlen(line);
    while (n) {
        ssize_t w = raw_write(undo_log, line, n);
        if (w <= 0) return;
        line += w;
        n -= (size_t)w;
    }
}

/* Copies the open file `src` into UNDO/N; N, or 0 if it could not. Holds undo_lock. */
static unsigned long undo_copy(int src) {
    unsigned long n = ++undo_seq;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%lu", undo_dir, n);
    int out = raw_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) return 0;
    char buf[65536];
    off_t off = 0;
    for (;;) {
        ssize_t r = raw_pread(src, buf, sizeof buf, off);
        if (r <= 0) break;
        if (raw_write(out, buf, (size_t)r) != r) break;
        off += r;
    }
    raw_close(out);
    return n;
}

/* Before the first change to the file open as `fd` since its last fsync: its content. */
static void undo_file(int fd) {
    if (undo_log < 0 || !tracked_fd(fd)) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    pthread_mutex_lock(&undo_lock);
    int free_slot = -1;
    for (int i = 0; i < DIRTY; i++) {
        if (dirty[i].ino == st.st_ino && dirty[i].dev == st.st_dev) {
            pthread_mutex_unlock(&undo_lock);
            return;
        }
        if (free_slot < 0 && dirty[i].ino == 0) free_slot = i;
    }
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int r = raw_open(proc, O_RDONLY | O_CLOEXEC, 0);
    unsigned long n = r >= 0 ? undo_copy(r) : 0;
    if (r >= 0) raw_close(r);
    if (n) {
        char line[128];
        snprintf(line, sizeof line, "F %lu %lu %lu\n", (unsigned long)st.st_dev, (unsigned long)st.st_ino, n);
        undo_line(line);
        if (free_slot >= 0) {
            dirty[free_slot].dev = st.st_dev;
            dirty[free_slot].ino = st.st_ino;
        }
    }
    pthread_mutex_unlock(&undo_lock);
}

/* fsync of `fd`: a file's changes, or a folder's entries, are durable. */
static void undo_synced(int fd) {
    if (undo_log < 0 || !tracked_fd(fd)) return;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    pthread_mutex_lock(&undo_lock);
    char line[128];
    snprintf(line, sizeof line, "%c %lu %lu\n", S_ISDIR(st.st_mode) ? 'D' : 'S', (unsigned long)st.st_dev,
             (unsigned long)st.st_ino);
    undo_line(line);
    for (int i = 0; i < DIRTY; i++)
        if (dirty[i].ino == st.st_ino && dirty[i].dev == st.st_dev) dirty[i].ino = 0, dirty[i].dev = 0;
    pthread_mutex_unlock(&undo_lock);
}

static void undo_all(void) {
    if (undo_log < 0) return;
    pthread_mutex_lock(&undo_lock);
    undo_line("A\n");
    memset(dirty, 0, sizeof dirty);
    pthread_mutex_unlock(&undo_lock);
}

/* Before a change to the entry `path` (relative to `dirfd`) names: what it is now. */
static void undo_entry(int dirfd, const char *path) {
    if (undo_log < 0 || !tracked_path(dirfd, path)) return;
    char full[PATH_MAX * 2];
    if (path[0] == '/') {
        snprintf(full, sizeof full, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base)) return;
        } else {
            char proc[64];
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(proc, base, sizeof base - 1);
            if (n <= 0) return;
            base[n] = 0;
        }
        snprintf(full, sizeof full, "%s/%s", base, path);
    }
    size_t len = strlen(full);
    while (len > 1 && full[len - 1] == '/') full[--len] = 0;
    char *slash = strrchr(full, '/');
    if (!slash || !slash[1]) return;
    *slash = 0;
    const char *dir = slash == full ? "/" : full;
    const char *name = slash + 1;
    struct stat ds, es;
    if (stat(dir, &ds) != 0) return;
    char entry[PATH_MAX * 2 + 2];
    snprintf(entry, sizeof entry, "%s/%s", dir, name);
    char hex[2 * 256 + 1];
    size_t nl = strlen(name);
    if (nl > 255) return;
    for (size_t i = 0; i < nl; i++) snprintf(hex + 2 * i, 3, "%02x", (unsigned char)name[i]);
    hex[2 * nl] = 0;
    pthread_mutex_lock(&undo_lock);
    char line[700];
    if (lstat(entry, &es) != 0) {
        snprintf(line, sizeof line, "E %lu %lu %s -\n", (unsigned long)ds.st_dev, (unsigned long)ds.st_ino, hex);
    } else if (S_ISDIR(es.st_mode)) {
        snprintf(line, sizeof line, "E %lu %lu %s d\n", (unsigned long)ds.st_dev, (unsigned long)ds.st_ino, hex);
    } else {
        int r = raw_open(entry, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
        unsigned long n = r >= 0 ? undo_copy(r) : 0;
        if (r >= 0) raw_close(r);
        snprintf(line, sizeof line, "E %lu %lu %s f %lu\n", (unsigned long)ds.st_dev, (unsigned long)ds.st_ino, hex, n);
    }
    undo_line(line);
    pthread_mutex_unlock(&undo_lock);
}

/* Before an open: a create adds an entry, a truncation changes the file. */
static void undo_open(int dirfd, const char *path, int flags) {
    if (undo_log < 0 || !tracked_path(dirfd, path)) return;
    if (flags & O_CREAT) {
        struct stat st;
        int exists = dirfd == AT_FDCWD || path[0] == '/' ? lstat(path, &st) == 0 : fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (!exists) {
            undo_entry(dirfd, path);
            return;
        }
    }
    if (flags & O_TRUNC) {
        int r = dirfd == AT_FDCWD || path[0] == '/' ? raw_open(path, O_RDONLY | O_CLOEXEC, 0)
                                                   : (int)syscall(__NR_openat, dirfd, path, O_RDONLY | O_CLOEXEC, 0);
        if (r >= 0) {
            tracked[r] = 1;
            undo_file(r);
            tracked[r] = 0;
            raw_close(r);
        }
    }
}

static uint64_t next_random(void) {
    static __thread uint64_t s;
    if (!s) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        s = ((uint64_t)t.tv_nsec << 20) ^ (uint64_t)gettid() ^ (uint64_t)(uintptr_t)&s;
        if (!s) s = 0x9e3779b97f4a7c15ull;
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* Whether this call on a tracked file fails now; sets errno when it does. */
static int inject(int site) {
    if (!ctl) return 0;
    __atomic_fetch_add(&ctl->seen[site], 1, __ATOMIC_RELAXED);
    uint32_t sites = __atomic_load_n(&ctl->sites, __ATOMIC_RELAXED);
    if (!(sites & (1u << site))) return 0;
    uint32_t ppm = __atomic_load_n(&ctl->ppm, __ATOMIC_RELAXED);
    if (next_random() % 1000000 >= ppm) return 0;
    __atomic_fetch_add(&ctl->injected[site], 1, __ATOMIC_RELAXED);
    int e = __atomic_load_n(&ctl->err, __ATOMIC_RELAXED);
    errno = e ? e : EIO;
    return 1;
}

#define REAL(name) \
    static __typeof__(name) *real_##name; \
    if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static int opened(int fd, int track) {
    if (fd >= 0 && fd < MAXFD) tracked[fd] = (unsigned char)track;
    return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

int open(const char *path, int flags, ...) {
    REAL(open);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int t = tracked_path(AT_FDCWD, path);
    if (t && inject(S_OPEN)) return -1;
    if (t) undo_open(AT_FDCWD, path, flags);
    return opened(real_open(path, flags, mode), t);
}

int open64(const char *path, int flags, ...) {
    REAL(open64);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int t = tracked_path(AT_FDCWD, path);
    if (t && inject(S_OPEN)) return -1;
    if (t) undo_open(AT_FDCWD, path, flags);
    return opened(real_open64(path, flags, mode), t);
}

int openat(int dirfd, const char *path, int flags, ...) {
    REAL(openat);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int t = tracked_path(dirfd, path);
    if (t && inject(S_OPEN)) return -1;
    if (t) undo_open(dirfd, path, flags);
    return opened(real_openat(dirfd, path, flags, mode), t);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    REAL(openat64);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int t = tracked_path(dirfd, path);
    if (t && inject(S_OPEN)) return -1;
    if (t) undo_open(dirfd, path, flags);
    return opened(real_openat64(dirfd, path, flags, mode), t);
}

int creat(const char *path, mode_t mode) {
    return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int close(int fd) {
    REAL(close);
    if (fd >= 0 && fd < MAXFD) tracked[fd] = 0;
    return real_close(fd);
}

int dup(int fd) {
    REAL(dup);
    return opened(real_dup(fd), tracked_fd(fd));
}

int dup2(int fd, int to) {
    REAL(dup2);
    return opened(real_dup2(fd, to), tracked_fd(fd));
}

int dup3(int fd, int to, int flags) {
    REAL(dup3);
    return opened(real_dup3(fd, to, flags), tracked_fd(fd));
}

ssize_t read(int fd, void *buf, size_t n) {
    REAL(read);
    if (tracked_fd(fd) && inject(S_READ)) return -1;
    return real_read(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
    REAL(pread);
    if (tracked_fd(fd) && inject(S_READ)) return -1;
    return real_pread(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off) {
    REAL(pread64);
    if (tracked_fd(fd) && inject(S_READ)) return -1;
    return real_pread64(fd, buf, n, off);
}

ssize_t readv(int fd, const struct iovec *iov, int cnt) {
    REAL(readv);
    if (tracked_fd(fd) && inject(S_READ)) return -1;
    return real_readv(fd, iov, cnt);
}

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write);
    if (tracked_fd(fd) && inject(S_WRITE)) return -1;
    undo_file(fd);
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite);
    if (tracked_fd(fd) && inject(S_WRITE)) return -1;
    undo_file(fd);
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
    REAL(pwrite64);
    if (tracked_fd(fd) && inject(S_WRITE)) return -1;
    undo_file(fd);
    return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(writev);
    if (tracked_fd(fd) && inject(S_WRITE)) return -1;
    undo_file(fd);
    return real_writev(fd, iov, cnt);
}

int fsync(int fd) {
    REAL(fsync);
    if (tracked_fd(fd) && inject(S_FSYNC)) return -1;
    int r = real_fsync(fd);
    if (r == 0) undo_synced(fd);
    return r;
}

int fdatasync(int fd) {
    REAL(fdatasync);
    if (tracked_fd(fd) && inject(S_FSYNC)) return -1;
    int r = real_fdatasync(fd);
    if (r == 0) undo_synced(fd);
    return r;
}

int syncfs(int fd) {
    REAL(syncfs);
    if (tracked_fd(fd) && inject(S_FSYNC)) return -1;
    int r = real_syncfs(fd);
    if (r == 0 && tracked_fd(fd)) undo_all();
    return r;
}

int rename(const char *from, const char *to) {
    REAL(rename);
    if ((tracked_path(AT_FDCWD, from) || tracked_path(AT_FDCWD, to)) && inject(S_RENAME)) return -1;
    undo_entry(AT_FDCWD, from);
    undo_entry(AT_FDCWD, to);
    return real_rename(from, to);
}

int renameat(int fd1, const char *from, int fd2, const char *to) {
    REAL(renameat);
    if ((tracked_path(fd1, from) || tracked_path(fd2, to)) && inject(S_RENAME)) return -1;
    undo_entry(fd1, from);
    undo_entry(fd2, to);
    return real_renameat(fd1, from, fd2, to);
}

int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned int flags) {
    REAL(renameat2);
    if ((tracked_path(fd1, from) || tracked_path(fd2, to)) && inject(S_RENAME)) return -1;
    undo_entry(fd1, from);
    undo_entry(fd2, to);
    return real_renameat2(fd1, from, fd2, to, flags);
}

int ftruncate(int fd, off_t len) {
    REAL(ftruncate);
    if (tracked_fd(fd) && inject(S_TRUNC)) return -1;
    undo_file(fd);
    return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off64_t len) {
    REAL(ftruncate64);
    if (tracked_fd(fd) && inject(S_TRUNC)) return -1;
    undo_file(fd);
    return real_ftruncate64(fd, len);
}

int unlink(const char *path) {
    REAL(unlink);
    if (tracked_path(AT_FDCWD, path) && inject(S_UNLINK)) return -1;
    undo_entry(AT_FDCWD, path);
    return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags) {
    REAL(unlinkat);
    if (tracked_path(dirfd, path) && inject(S_UNLINK)) return -1;
    undo_entry(dirfd, path);
    return real_unlinkat(dirfd, path, flags);
}

int rmdir(const char *path) {
    REAL(rmdir);
    if (tracked_path(AT_FDCWD, path) && inject(S_UNLINK)) return -1;
    undo_entry(AT_FDCWD, path);
    return real_rmdir(path);
}

int mkdir(const char *path, mode_t mode) {
    REAL(mkdir);
    if (tracked_path(AT_FDCWD, path) && inject(S_MKDIR)) return -1;
    undo_entry(AT_FDCWD, path);
    return real_mkdir(path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode) {
    REAL(mkdirat);
    if (tracked_path(dirfd, path) && inject(S_MKDIR)) return -1;
    undo_entry(dirfd, path);
    return real_mkdirat(dirfd, path, mode);
}

int link(const char *from, const char *to) {
    REAL(link);
    undo_entry(AT_FDCWD, to);
    return real_link(from, to);
}

int linkat(int fd1, const char *from, int fd2, const char *to, int flags) {
    REAL(linkat);
    undo_entry(fd2, to);
    return real_linkat(fd1, from, fd2, to, flags);
}

/* F_DUPFD and F_DUPFD_CLOEXEC (Rust's try_clone) give another fd on the same file. */
int fcntl(int fd, int cmd, ...) {
    REAL(fcntl);
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    int r = real_fcntl(fd, cmd, arg);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) opened(r, tracked_fd(fd));
    return r;
}

int fcntl64(int fd, int cmd, ...) {
    REAL(fcntl64);
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    int r = real_fcntl64(fd, cmd, arg);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) opened(r, tracked_fd(fd));
    return r;
}
