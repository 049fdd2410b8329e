/* fastvpd sysfs walker: walks sysfs with directory fds (openat, getdents64, readlinkat, fstat).
 * No Python API: cffi calls these with the GIL released. See _sysfs.h for the result layout.
 *
 * Cost model (the reason for the structure): each device directory is listed once with
 * getdents64 (one call on sysfs, see list_dir), which tells which files exist and their type, so
 * absent files cost nothing, FIFOs/directories/links are never opened and a listed regular file
 * is read with openat + read, no fstat (see read_file). The fds of a device are closed together
 * after it, normally in one close_range (see fd_flush). A PF's VFs are computed from
 * sriov_offset/sriov_stride (VF RID = PF RID + offset + N * stride) and verified by the virtfn
 * names, the device listing, six fstat/fstatat calls (the first and the last virtfn lead to the
 * tree's own directories of the computed addresses, the first VF's physfn leads back to the PF)
 * and the first VF's identity files (one listing of bus/pci/devices/<first VF>/); every other VF
 * is filled from its PF without a syscall. A PF with its netdev and VPD costs about 45 syscalls,
 * VFs included. Links are compared by what they lead to (st_dev, st_ino), never by name only. */
#include "_sysfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#define DENTS_BUF (64 * 1024)
#define DENT_HDR 19     /* d_ino (8), d_off (8), d_reclen (2), d_type (1), then d_name */
#define ADDR_MIN 12     /* "DDDD:BB:SS.F" */
#define ADDR_MAX 16     /* an 8-digit domain (the kernel prints it with %04x, an int) */
#define LINK_CAP 4096
#define DETAIL_CAP LINK_CAP /* problem details (link targets, file contents) are kept whole;
                               _walk.py cuts them for display, marked */
#define PATH_CAP 600    /* two names of at most NAME_MAX plus a few components */
#define MAX_VFS 65536
#define SYSFS_MAGIC_ 0x62656572 /* <linux/magic.h> SYSFS_MAGIC */
#define TMPFS_MAGIC_ 0x01021994 /* <linux/magic.h> TMPFS_MAGIC */

enum { ST_DONE = 1, ST_PHYSFN = 2, ST_DUP = 4 };
enum { RD_OK = 0, RD_ERR, RD_NOTREG, RD_TOOLONG };
enum { V_GONE = -100 }; /* attribute getter: the device vanished */

typedef struct sbuf {
    unsigned char *p;
    size_t len, cap;
} sbuf;

typedef struct walker {
    fv_result *r;
    fv_counters *c;
    int rootfd;       /* <root> (O_PATH), held until the end so that it does not leave a gap
                         below the fds of the first device (see fd_flush) */
    int devfd;        /* <root>/bus/pci/devices */
    int flags;
    int oom;          /* 1 out of memory, 2 result too big */
    int eod_marker;   /* the tree's file system marks the end of a directory listing (list_dir) */
    int pend[32];     /* fds done with, not yet closed (fd_done) */
    int npend;
    int no_close_range; /* close_range failed once (old kernel, seccomp): close one by one */
    sbuf str;         /* becomes r->strings */
    sbuf tmp;         /* one device's netdev lines before they go to str */
    size_t prob_cap;
    unsigned char *dents;
    unsigned char *vpd; /* FV_VPD_CAP + 1 */
    uint64_t *keys;     /* sorted device keys: domain << 16 | routing ID */
    int32_t n;
    uint8_t *state;
    int32_t *vfn;       /* virtfn numbers of the device being listed */
    size_t vfn_len, vfn_cap;
    int32_t *vfidx;     /* device index of each computed VF of the PF being read */
    size_t vfidx_cap;
    uint64_t dent_ino;  /* d_ino of the entry list_dir hands its callback */
    const fv_rewalk_args *reuse; /* fv_rewalk: what not to read */
    uint64_t *reuse_keys;        /* their keys, in the order given (address order) */
    sbuf snap;          /* the class/net listing, "<inode> <name>\n" per entry (net_index) */
    int class_net;      /* class/net was listed: netcount is the netdev index (net_index) */
    uint8_t *netcount;  /* per device: netdevs class/net names for it (saturating at 255) */
} walker;

/* ---- counted syscalls ------------------------------------------------------------------------ */

static int c_openat(fv_counters *c, int dfd, const char *path, int flags)
{
    c->openat++;
    return openat(dfd, path, flags);
}

static void c_close(fv_counters *c, int fd)
{
    c->close++;
    close(fd);
}

static ssize_t c_readlinkat(fv_counters *c, int dfd, const char *path, char *buf, size_t cap)
{
    c->readlinkat++;
    return readlinkat(dfd, path, buf, cap);
}

static long c_getdents(fv_counters *c, int fd, void *buf, size_t cap)
{
    c->getdents64++;
    return syscall(SYS_getdents64, fd, buf, cap);
}

#define OPEN_DIR (O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK)
#define OPEN_FILE (O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)

/* ---- closing fds in batches ------------------------------------------------------------------
 * Reading a device opens a dozen files and directories; closing each would cost as many close()
 * calls. Instead an fd the walk is done with goes to w->pend (fd_done), and fd_flush() closes
 * them all at once after each device: every run of consecutive numbers with one close_range(),
 * which closes exactly those fds because every number in the run is one the walk holds (another
 * thread's fd can never sit inside a run; it just splits it in two). Where close_range is missing
 * or refused (Linux < 5.9, seccomp) it fails before closing anything and each fd is closed on
 * its own from then on. Nothing else changes: the files are only held a little longer, and an
 * open that fails with EMFILE/ENFILE closes the pending fds and tries again. */

static void fd_flush(walker *w)
{
    int *f = w->pend, n = w->npend;
    w->npend = 0;
    for (int i = 1; i < n; i++) { /* insertion sort: at most 32 fds */
        int x = f[i], j = i;
        for (; j > 0 && f[j - 1] > x; j--)
            f[j] = f[j - 1];
        f[j] = x;
    }
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && f[j + 1] == f[j] + 1)
            j++;
#ifdef SYS_close_range
        if (j > i && !w->no_close_range) {
            w->c->close_range++;
            if (syscall(SYS_close_range, (unsigned int)f[i], (unsigned int)f[j], 0) == 0) {
                i = j + 1;
                continue;
            }
            w->no_close_range = 1;
        }
#endif
        for (; i <= j; i++)
            c_close(w->c, f[i]);
    }
}

static void fd_done(walker *w, int fd)
{
    if (w->npend == (int)(sizeof w->pend / sizeof w->pend[0]))
        fd_flush(w);
    w->pend[w->npend++] = fd;
}

static int w_openat(walker *w, int dfd, const char *path, int flags)
{
    int fd = c_openat(w->c, dfd, path, flags);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && w->npend > 0) {
        fd_flush(w);
        fd = c_openat(w->c, dfd, path, flags);
    }
    return fd;
}

/* ---- buffers --------------------------------------------------------------------------------- */

static int sb_reserve(walker *w, sbuf *b, size_t n)
{
    if (n <= b->cap - b->len)
        return 0;
    if (b->len > (size_t)INT32_MAX || n > (size_t)INT32_MAX - b->len) {
        if (!w->oom)
            w->oom = 2;
        return -1;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) {
        w->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* Append n bytes; returns their offset or -1 (w->oom is then set). */
static int32_t sb_put(walker *w, sbuf *b, const void *data, size_t n)
{
    if (sb_reserve(w, b, n))
        return -1;
    int32_t off = (int32_t)b->len;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    return off;
}

/* Room for `need` elements of size `elem` in array p: the (possibly moved) array, or NULL with
 * w->oom set and p untouched. */
static void *grow(walker *w, void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    if (c > SIZE_MAX / elem) {
        w->oom = 1;
        return NULL;
    }
    void *q = realloc(p, c * elem);
    if (!q) {
        w->oom = 1;
        return NULL;
    }
    *cap = c;
    return q;
}

/* ---- problems -------------------------------------------------------------------------------- */

static void problem(walker *w, int32_t dev, int attr, int kind, int err, int arg, const char *path,
                    size_t pathlen, const void *detail, size_t detaillen, int with_detail)
{
    fv_result *r = w->r;
    fv_problem *arr = grow(w, r->problems, &w->prob_cap, (size_t)r->n_problems + 1, sizeof *arr);
    if (!arr)
        return;
    r->problems = arr;
    fv_problem *p = &r->problems[r->n_problems];
    p->device = dev;
    p->attr = attr;
    p->kind = kind;
    p->err = err;
    p->arg = arg;
    p->path_len = (int32_t)pathlen;
    p->path_off = sb_put(w, &w->str, path, pathlen);
    p->detail_off = p->detail_len = -1;
    if (with_detail) {
        if (detaillen > DETAIL_CAP)
            detaillen = DETAIL_CAP;
        p->detail_len = (int32_t)detaillen;
        p->detail_off = sb_put(w, &w->str, detail, detaillen);
    }
    if (p->path_off >= 0 && (!with_detail || p->detail_off >= 0))
        r->n_problems++;
}

static void simple_problem(walker *w, int32_t dev, int attr, int kind, int err, int arg,
                           const char *path)
{
    problem(w, dev, attr, kind, err, arg, path, strlen(path), NULL, 0, 0);
}

/* ---- addresses ------------------------------------------------------------------------------- */

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* A PCI address as the kernel names it (dev_set_name "%04x:%02x:%02x.%d": lower-case hex, the
 * domain in 4 digits, or 5 to 8 without a leading zero above ffff, e.g. Intel VMD's
 * "10000:e1:00.0"), slot <= 0x1f, function <= 7 -> key (domain << 16 | routing ID); -1 when the
 * name is anything else. */
static int64_t parse_addr(const char *s, size_t len)
{
    if (len < ADDR_MIN || len > ADDR_MAX)
        return -1;
    size_t dl = len - 8; /* ":BB:SS.F" is 8 bytes */
    if (dl > 4 && s[0] == '0')
        return -1;
    uint64_t domain = 0;
    for (size_t i = 0; i < dl; i++) {
        int h = hexval((unsigned char)s[i]);
        if (h < 0)
            return -1;
        domain = domain << 4 | (uint64_t)h;
    }
    const char *t = s + dl;
    if (t[0] != ':' || t[3] != ':' || t[6] != '.')
        return -1;
    int b1 = hexval((unsigned char)t[1]), b0 = hexval((unsigned char)t[2]);
    int s1 = hexval((unsigned char)t[4]), s0 = hexval((unsigned char)t[5]);
    int fn = hexval((unsigned char)t[7]);
    if (b1 < 0 || b0 < 0 || s1 < 0 || s0 < 0 || fn < 0)
        return -1;
    uint64_t bus = (uint64_t)(b1 << 4 | b0), slot = (uint64_t)(s1 << 4 | s0);
    if (slot > 0x1f || fn > 7)
        return -1;
    return (int64_t)(domain << 16 | bus << 8 | slot << 3 | (uint64_t)fn);
}

/* The name of a key (the inverse of parse_addr) into out, NUL-terminated; returns its length. */
static size_t fmt_addr(uint64_t key, char out[ADDR_MAX + 1])
{
    static const char hx[] = "0123456789abcdef";
    uint64_t domain = key >> 16;
    unsigned bus = (unsigned)(key >> 8) & 0xff, slot = (unsigned)(key >> 3) & 0x1f;
    unsigned fn = (unsigned)key & 7;
    size_t dl = 4;
    while (dl < 8 && (domain >> (4 * dl)) != 0)
        dl++;
    for (size_t k = 0; k < dl; k++)
        out[k] = hx[(domain >> (4 * (dl - 1 - k))) & 15];
    char *t = out + dl;
    t[0] = ':';
    t[1] = hx[bus >> 4];
    t[2] = hx[bus & 15];
    t[3] = ':';
    t[4] = hx[slot >> 4];
    t[5] = hx[slot & 15];
    t[6] = '.';
    t[7] = hx[fn];
    t[8] = '\0';
    return dl + 8;
}

static int32_t lookup(const walker *w, uint64_t key)
{
    int32_t lo = 0, hi = w->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (w->keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < w->n && w->keys[lo] == key) ? lo : -1;
}

/* The device a link target names: its last path component must be a listed address. Returns the
 * index, -1 when not listed, -2 when the basename is no address; *base gets the basename. */
static int32_t link_target(const walker *w, const char *t, size_t len, const char **base,
                           size_t *baselen)
{
    size_t b = len;
    while (b > 0 && t[b - 1] != '/')
        b--;
    *base = t + b;
    *baselen = len - b;
    int64_t key = parse_addr(t + b, len - b);
    if (key < 0)
        return -2;
    return lookup(w, (uint64_t)key);
}

/* ---- reading files --------------------------------------------------------------------------- */

/* The smallest page size Linux runs with. A read of a sysfs binary attribute (vpd) returns at most
 * one page, and less only at the end of the attribute; a regular file returns less than asked
 * only at its end. */
#define MIN_PAGE 4096

/* Open `path` under `dfd` without following a final symlink and without blocking, then read at
 * most cap bytes (buf holds cap + 1, the extra byte detects longer files).
 *
 * `type` is the d_type the directory listing gave for `path`, or DT_UNKNOWN when the listing did
 * not say or `path` was not listed (e.g. "virtfn0/vendor", "net/eth0/address"). Only then is the
 * open file fstat'ed to make sure it is a regular file before anything is read from it: a listed
 * DT_REG needs no second opinion. If a FIFO, device node or directory was swapped in between the
 * listing and the open, the open flags keep that harmless: O_NOFOLLOW fails on a symlink (ELOOP),
 * O_NONBLOCK makes neither the open nor a read wait on a FIFO or device (the read returns 0, or
 * fails with EAGAIN -> "unreadable"), O_NOCTTY keeps a terminal from becoming ours, and a read of
 * a directory fails with EISDIR. Such a race costs at most a wrong "empty"/"unreadable" problem.
 *
 * Text attributes come in one read (sysfs returns a whole attribute at once; a short read of a
 * regular file is its end). to_eof reads binary attributes such as vpd, which sysfs hands out at
 * most a page per read: it reads again only after a read that filled a whole page (MIN_PAGE) or
 * all that was asked, so a VPD image shorter than a page costs one read, not two. */
static int read_file(walker *w, int dfd, const char *path, unsigned char type,
                     unsigned char *buf, size_t cap, size_t *len, int *err, int to_eof)
{
    fv_counters *c = w->c;
    *len = 0;
    *err = 0;
    int fd = w_openat(w, dfd, path, OPEN_FILE);
    if (fd < 0) {
        *err = errno;
        if (*err == ELOOP) {  /* O_NOFOLLOW on a symlink: not a regular file */
            *err = DT_LNK;
            return RD_NOTREG;
        }
        return RD_ERR;
    }
    if (type != DT_REG) {
        struct stat st;
        c->fstat++;
        if (fstat(fd, &st) != 0) {
            *err = errno;
            fd_done(w, fd);
            return RD_ERR;
        }
        if (!S_ISREG(st.st_mode)) {
            *err = (int)IFTODT(st.st_mode);
            fd_done(w, fd);
            return RD_NOTREG;
        }
    }
    size_t got = 0;
    int rc = RD_OK;
    while (got <= cap) {
        size_t want = cap + 1 - got;
        c->read++;
        ssize_t n = read(fd, buf + got, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *err = errno;
            rc = RD_ERR;
            break;
        }
        got += (size_t)n;
        if (!to_eof || (size_t)n < (want < MIN_PAGE ? want : MIN_PAGE))
            break; /* n == 0 included */
    }
    fd_done(w, fd);
    if (rc == RD_OK && got > cap) {
        got = cap;
        rc = RD_TOOLONG;
    }
    *len = got;
    return rc;
}

ssize_t fv_read_file_at(int dirfd, const char *name, unsigned char *buf, size_t cap, int *err)
{
    fv_counters c;
    walker w;
    memset(&c, 0, sizeof c);
    memset(&w, 0, sizeof w);
    w.c = &c;
    if (cap == 0 || cap > (size_t)64 * 1024 * 1024) {
        *err = EINVAL;
        return -1;
    }
    unsigned char *tmp = malloc(cap + 1);
    if (!tmp) {
        *err = ENOMEM;
        return -1;
    }
    size_t len;
    int rc = read_file(&w, dirfd, name, DT_UNKNOWN, tmp, cap, &len, err, 1);
    fd_flush(&w);
    if (rc == RD_NOTREG) {
        *err = EINVAL;
        free(tmp);
        return -1;
    }
    if (rc == RD_ERR) {
        free(tmp);
        return -1;
    }
    memcpy(buf, tmp, len);
    free(tmp);
    return (ssize_t)len;
}

/* ---- parsing (every index checked against len) ----------------------------------------------- */

enum { PARSE_EMPTY = -2, PARSE_GARBAGE = -3 };
enum { HEX_0X, HEX_BARE, DEC, DEC_NUMA };

/* Parse one number in the format the attribute uses, with at most one trailing newline. */
static int64_t parse_num(const unsigned char *b, size_t len, int fmt, int64_t max)
{
    if (len > 0 && b[len - 1] == '\n')
        len--;
    if (len == 0)
        return PARSE_EMPTY;
    size_t i = 0;
    int64_t v = 0;
    if (fmt == HEX_0X || fmt == HEX_BARE) {
        if (len >= 2 && b[0] == '0' && (b[1] == 'x' || b[1] == 'X'))
            i = 2;
        else if (fmt == HEX_0X)
            return PARSE_GARBAGE;
        if (i == len || len - i > 8)
            return PARSE_GARBAGE;
        for (; i < len; i++) {
            unsigned char ch = b[i];
            int h = hexval(ch >= 'A' && ch <= 'F' ? (unsigned char)(ch - 'A' + 'a') : ch);
            if (h < 0)
                return PARSE_GARBAGE;
            v = v * 16 + h;
        }
    } else {
        if (fmt == DEC_NUMA && len == 2 && b[0] == '-' && b[1] == '1')
            return -1;
        if (len > 9)
            return PARSE_GARBAGE;
        for (; i < len; i++) {
            if (b[i] < '0' || b[i] > '9')
                return PARSE_GARBAGE;
            v = v * 10 + (b[i] - '0');
        }
    }
    return v > max ? PARSE_GARBAGE : v;
}

static const char *const attr_file[FV_A_COUNT] = {
    "", "vendor", "device", "class", "numa_node", "sriov_totalvfs", "sriov_offset",
    "sriov_stride", "sriov_vf_device", "driver", "net", "vpd", "physfn", "virtfn", "",
};

static const int attr_fmt[FV_A_COUNT] = {
    0, HEX_0X, HEX_0X, HEX_0X, DEC_NUMA, DEC, DEC, DEC, HEX_BARE,
};

static const int64_t attr_max[FV_A_COUNT] = {
    0, 0xffff, 0xffff, 0xffffff, 65535, 65535, 65535, 65535, 0xffff,
};

/* ---- directory listing ----------------------------------------------------------------------- */

typedef int (*dent_cb)(walker *w, void *ctx, const char *name, size_t len, unsigned char type);

/* List `fd` with getdents64 into the 64 KiB buffer; calls cb for every entry but "." and "..".
 * Returns 0 or an errno value (EIO for a malformed buffer).
 *
 * A call that returns less than a buffer is not necessarily the last one (the kernel stops early
 * when a signal is pending), so the end is normally the call that returns 0. On sysfs and tmpfs
 * that call can be saved: the d_off of the last entry a call returns is where the next call would
 * start, and once the whole directory has been returned these file systems set it to an
 * end-of-directory value that no entry ever gets. kernfs (sysfs) uses INT_MAX, which
 * kernfs_name_hash() never hands out; tmpfs's offset directories (Linux 6.6+) use
 * DIR_OFFSET_EOD, S32_MAX (LONG_MAX in some 6.1x versions), which simple_offset_add() never
 * assigns. Elsewhere (w->eod_marker 0, see start()) or when d_off is anything else, the loop
 * still asks until getdents64 returns 0. */
static int list_dir(walker *w, int fd, dent_cb cb, void *ctx)
{
    for (;;) {
        long n = c_getdents(w->c, fd, w->dents, DENTS_BUF);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return 0;
        if (n > DENTS_BUF)
            return EIO;
        size_t pos = 0, end = (size_t)n;
        int64_t last_off = 0;
        while (pos < end) {
            if (end - pos < DENT_HDR + 1)
                return EIO;
            unsigned short reclen;
            memcpy(&reclen, w->dents + pos + 16, sizeof reclen);
            if (reclen < DENT_HDR + 1 || reclen > end - pos)
                return EIO;
            memcpy(&last_off, w->dents + pos + 8, sizeof last_off);
            unsigned char type = w->dents[pos + 18];
            const char *name = (const char *)w->dents + pos + DENT_HDR;
            size_t len = strnlen(name, reclen - DENT_HDR);
            if (len == (size_t)reclen - DENT_HDR)
                return EIO; /* no terminating NUL inside the record */
            if (len > 0 && !(len == 1 && name[0] == '.') &&
                !(len == 2 && name[0] == '.' && name[1] == '.')) {
                memcpy(&w->dent_ino, w->dents + pos, sizeof w->dent_ino);
                int rc = cb(w, ctx, name, len, type);
                if (rc)
                    return rc;
            }
            pos += reclen;
        }
        if (w->eod_marker && (last_off == INT32_MAX || last_off == INT64_MAX))
            return 0;
    }
}

/* ---- the bus/pci/devices listing -------------------------------------------------------------- */

typedef struct {
    uint64_t key, ino;
} keyino;

typedef struct {
    keyino *keys;
    size_t n, cap;
} keylist;

static int listing_cb(walker *w, void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)type;
    keylist *kl = ctx;
    int64_t key = parse_addr(name, len);
    if (key < 0) {
        problem(w, -1, FV_A_NAME, FV_P_BAD_NAME, 0, 0, name, len, NULL, 0, 0);
        return w->oom ? ENOMEM : 0;
    }
    keyino *keys = grow(w, kl->keys, &kl->cap, kl->n + 1, sizeof *keys);
    if (!keys)
        return ENOMEM;
    kl->keys = keys;
    kl->keys[kl->n].key = (uint64_t)key;
    kl->keys[kl->n++].ino = w->dent_ino;
    return 0;
}

static int cmp_key(const void *a, const void *b)
{
    uint64_t x = ((const keyino *)a)->key, y = ((const keyino *)b)->key;
    return (x > y) - (x < y);
}

static int bus_keys(walker *w, keylist *kp);

/* Sort `a` by key, stably: an LSD radix sort by bytes, skipping the bytes in which all keys
 * agree (the domain, mostly), so a listing of thousands of functions takes two counting passes
 * instead of an O(n log n) comparison sort; qsort when short or out of memory. */
static void sort_keys(keyino *a, size_t n)
{
    keyino *tmp = n >= 64 ? malloc(n * sizeof *tmp) : NULL;
    if (!tmp) {
        if (n > 1)
            qsort(a, n, sizeof *a, cmp_key);
        return;
    }
    uint64_t any = 0, all = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        any |= a[i].key;
        all &= a[i].key;
    }
    keyino *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        if ((((any ^ all) >> shift) & 0xff) == 0)
            continue;
        size_t start[256] = {0};
        for (size_t i = 0; i < n; i++)
            start[(src[i].key >> shift) & 0xff]++;
        for (size_t b = 0, sum = 0; b < 256; b++) {
            size_t c = start[b];
            start[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[start[(src[i].key >> shift) & 0xff]++] = src[i];
        keyino *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
    free(tmp);
}

/* The bus/pci/devices listing failed with `rc` (an errno value, or 0 when w->oom says why):
 * records it on the result (ENOMEM without w->oom: the result would be too big); returns -1. */
static int listing_failed(walker *w, int rc)
{
    if (rc && rc != ENOMEM) {
        w->r->error = FV_E_LISTING;
        w->r->error_errno = rc;
    } else if (!w->oom) {
        w->oom = 2;
    }
    return -1;
}

/* List bus/pci/devices into w->keys (sorted, w->n of them) and r->inodes (each entry's d_ino).
 * 0, or -1 with r->error (or w->oom) set. */
static int list_bus(walker *w)
{
    keylist kl = {NULL, 0, 0};
    int rc = list_dir(w, w->devfd, listing_cb, &kl);
    if (rc || w->oom) {
        free(kl.keys);
        return listing_failed(w, rc);
    }
    return bus_keys(w, &kl);
}

/* The keys `kl` holds (freed here), sorted into w->keys, their inodes into r->inodes: 0 or -1
 * (w->oom set; 2 when there are more than a result can hold). */
static int bus_keys(walker *w, keylist *kp)
{
    fv_result *r = w->r;
    keylist kl = *kp;
    if (kl.n > (size_t)INT32_MAX / sizeof(fv_device)) {
        free(kl.keys);
        w->oom = 2;
        return -1;
    }
    sort_keys(kl.keys, kl.n);
    w->keys = malloc((kl.n ? kl.n : 1) * sizeof *w->keys);
    r->inodes = malloc((kl.n ? kl.n : 1) * sizeof *r->inodes);
    if (!w->keys || !r->inodes) {
        free(kl.keys);
        w->oom = 1;
        return -1;
    }
    for (size_t i = 0; i < kl.n; i++) {
        w->keys[i] = kl.keys[i].key;
        r->inodes[i] = kl.keys[i].ino;
    }
    free(kl.keys);
    w->n = (int32_t)kl.n;
    r->n_listed = w->n;
    return 0;
}

/* ---- one device directory -------------------------------------------------------------------- */

typedef struct {
    int32_t dev;
    uint8_t present[FV_A_COUNT];
    uint8_t type[FV_A_COUNT];
    int32_t nvirtfn, maxvirtfn;
} dirscan;

static int known_attr(const char *name, size_t len)
{
    for (int a = FV_A_VENDOR; a <= FV_A_PHYSFN; a++) {
        const char *f = attr_file[a];
        if (strlen(f) == len && memcmp(f, name, len) == 0)
            return a;
    }
    return -1;
}

/* virtfn<N> with N in canonical decimal (no leading zero), N < 65536: N; else -1. */
static int32_t virtfn_number(const char *name, size_t len)
{
    if (len <= 6 || len > 11 || memcmp(name, "virtfn", 6) != 0)
        return -1;
    if (name[6] == '0' && len > 7)
        return -1;
    int32_t v = 0;
    for (size_t i = 6; i < len; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v < MAX_VFS ? v : -1;
}

static int device_dir_cb(walker *w, void *ctx, const char *name, size_t len, unsigned char type)
{
    dirscan *ds = ctx;
    int a = known_attr(name, len);
    if (a >= 0) {
        ds->present[a] = 1;
        ds->type[a] = type;
        return 0;
    }
    if (len >= 6 && memcmp(name, "virtfn", 6) == 0) {
        int32_t v = virtfn_number(name, len);
        if (v < 0) {
            problem(w, ds->dev, FV_A_VIRTFN, FV_P_BAD_NAME, 0, 0, name, len, NULL, 0, 0);
            return w->oom ? ENOMEM : 0;
        }
        int32_t *vfn = grow(w, w->vfn, &w->vfn_cap, w->vfn_len + 1, sizeof *vfn);
        if (!vfn)
            return ENOMEM;
        w->vfn = vfn;
        w->vfn[w->vfn_len++] = v;
        ds->nvirtfn++;
        if (v > ds->maxvirtfn)
            ds->maxvirtfn = v;
    }
    return 0;
}

static int regular_or_unknown(unsigned char type)
{
    return type == DT_REG || type == DT_UNKNOWN;
}

/* Read and parse one numeric attribute (listed in ds) into *out. Returns V_GONE when the device
 * vanished, else 0; problems are recorded on the device. */
static int get_attr(walker *w, int dfd, const dirscan *ds, int a, int required, int32_t *out)
{
    *out = -1;
    const char *f = attr_file[a];
    if (!ds->present[a]) {
        if (required)
            simple_problem(w, ds->dev, a, FV_P_MISSING, 0, 0, f);
        return 0;
    }
    if (!regular_or_unknown(ds->type[a])) {
        simple_problem(w, ds->dev, a, FV_P_NOT_REGULAR, 0, ds->type[a], f);
        return 0;
    }
    unsigned char buf[FV_ATTR_CAP + 1];
    size_t len;
    int err;
    switch (read_file(w, dfd, f, ds->type[a], buf, FV_ATTR_CAP, &len, &err, 0)) {
    case RD_ERR:
        if (err == ENOENT)
            return V_GONE;
        simple_problem(w, ds->dev, a, FV_P_UNREADABLE, err, 0, f);
        return 0;
    case RD_NOTREG:
        simple_problem(w, ds->dev, a, FV_P_NOT_REGULAR, 0, err, f);
        return 0;
    case RD_TOOLONG:
        simple_problem(w, ds->dev, a, FV_P_TOO_LONG, 0, FV_ATTR_CAP, f);
        return 0;
    }
    int64_t v = parse_num(buf, len, attr_fmt[a], attr_max[a]);
    if (v == PARSE_EMPTY)
        simple_problem(w, ds->dev, a, FV_P_EMPTY, 0, 0, f);
    else if (v == PARSE_GARBAGE)
        problem(w, ds->dev, a, FV_P_GARBAGE, 0, 0, f, strlen(f), buf, len, 1);
    else
        *out = (int32_t)v;
    return 0;
}

/* Store the driver name of the `driver` link of dir `dfd` (path "driver" or "<addr>/driver"). The
 * kernel's link leads to bus/<bus>/drivers/<name>: a target without a drivers/<name> tail (a link
 * to itself, to the device, to nothing in particular) names no driver and is a problem. */
static void read_driver(walker *w, int32_t dev, int dfd, const char *path)
{
    fv_device *d = &w->r->devices[dev];
    char t[LINK_CAP];
    ssize_t n = c_readlinkat(w->c, dfd, path, t, sizeof t);
    if (n < 0) {
        if (errno == EINVAL)
            simple_problem(w, dev, FV_A_DRIVER, FV_P_NOT_LINK, 0, 0, "driver");
        else if (errno != ENOENT) /* ENOENT: unbound (or gone) meanwhile */
            simple_problem(w, dev, FV_A_DRIVER, FV_P_UNREADABLE, errno, 0, "driver");
        return;
    }
    if ((size_t)n >= sizeof t) {
        simple_problem(w, dev, FV_A_DRIVER, FV_P_TOO_LONG, 0, LINK_CAP, "driver");
        return;
    }
    size_t b = (size_t)n;
    while (b > 0 && t[b - 1] != '/')
        b--;
    size_t len = (size_t)n - b;
    static const char tail[] = "drivers/";
    const size_t tl = sizeof tail - 1;
    int named = len > 0 && !(len == 1 && t[b] == '.') && !(len == 2 && t[b] == '.' && t[b + 1] == '.');
    if (!named || b < tl || memcmp(t + b - tl, tail, tl) != 0 || (b > tl && t[b - tl - 1] != '/')) {
        problem(w, dev, FV_A_DRIVER, FV_P_BAD_TARGET, 0, 0, "driver", 6, t, (size_t)n, 1);
        return;
    }
    d->driver_off = sb_put(w, &w->str, t + b, len);
    d->driver_len = d->driver_off < 0 ? -1 : (int32_t)len;
}

typedef struct {
    int32_t dev;
    int netfd;
} netscan;

static int mac_ok(const unsigned char *b, size_t len)
{
    if (len == 0 || len > 3 * 32)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = b[i];
        if (ch != ':' && hexval(ch) < 0 && !(ch >= 'A' && ch <= 'F'))
            return 0;
    }
    return 1;
}

static int net_cb(walker *w, void *ctx, const char *name, size_t len, unsigned char type)
{
    netscan *ns = ctx;
    char path[PATH_CAP];
    char rel[PATH_CAP];
    snprintf(rel, sizeof rel, "net/%.*s/address", (int)len, name);
    if (type != DT_DIR && type != DT_LNK && type != DT_UNKNOWN)
        return 0; /* a stray file in net/ is no netdev */
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '\t' || name[i] == '\n' || name[i] == ' ') {
            problem(w, ns->dev, FV_A_NET, FV_P_BAD_NAME, 0, 0, rel, strlen(rel) - 8, NULL, 0, 0);
            return w->oom ? ENOMEM : 0;
        }
    }
    snprintf(path, sizeof path, "%.*s/address", (int)len, name);
    unsigned char buf[FV_ATTR_CAP + 1];
    size_t n = 0;
    int err;
    int rc = read_file(w, ns->netfd, path, DT_UNKNOWN, buf, FV_ATTR_CAP, &n, &err, 0);
    size_t maclen = 0;
    if (rc == RD_OK) {
        if (n > 0 && buf[n - 1] == '\n')
            n--;
        if (n == 0)
            simple_problem(w, ns->dev, FV_A_NET, FV_P_EMPTY, 0, 0, rel);
        else if (!mac_ok(buf, n))
            problem(w, ns->dev, FV_A_NET, FV_P_GARBAGE, 0, 0, rel, strlen(rel), buf, n, 1);
        else
            maclen = n;
    } else if (rc == RD_ERR) {
        if (err == ENOENT) /* no address file, or the netdev went away: list it without a MAC */
            simple_problem(w, ns->dev, FV_A_NET, FV_P_MISSING, 0, 0, rel);
        else
            simple_problem(w, ns->dev, FV_A_NET, FV_P_UNREADABLE, err, 0, rel);
    } else if (rc == RD_NOTREG) {
        simple_problem(w, ns->dev, FV_A_NET, FV_P_NOT_REGULAR, 0, err, rel);
    } else {
        simple_problem(w, ns->dev, FV_A_NET, FV_P_TOO_LONG, 0, FV_ATTR_CAP, rel);
    }
    if (sb_put(w, &w->tmp, name, len) < 0 || sb_put(w, &w->tmp, "\t", 1) < 0 ||
        sb_put(w, &w->tmp, buf, maclen) < 0 || sb_put(w, &w->tmp, "\n", 1) < 0)
        return ENOMEM;
    return 0;
}

/* The netdev lines of w->tmp become devices[dev]'s, the device's netdevs. */
static void put_netdevs(walker *w, int32_t dev)
{
    fv_device *d = &w->r->devices[dev];
    if (w->tmp.len > 0)
        d->flags |= FV_F_NETDEV;
    d->netdev_off = sb_put(w, &w->str, w->tmp.p, w->tmp.len);
    d->netdev_len = d->netdev_off < 0 ? -1 : (int32_t)w->tmp.len;
}

/* The net/ directory `path` of dir `dfd`, opened for listing; when there is none (or it cannot be
 * opened) devices[dev] gets no netdevs, with the problem if any, and the result is -1. */
static int open_net(walker *w, int32_t dev, int dfd, const char *path)
{
    int fd = w_openat(w, dfd, path, OPEN_DIR);
    if (fd < 0) {
        int err = errno;
        if (err == ENOTDIR)
            simple_problem(w, dev, FV_A_NET, FV_P_NOT_DIR, 0, 0, "net");
        else if (err != ENOENT)
            simple_problem(w, dev, FV_A_NET, FV_P_UNREADABLE, err, 0, "net");
        w->tmp.len = 0;
        put_netdevs(w, dev);
    }
    return fd;
}

/* Netdevs of dir `dfd` (path "net" or "<addr>/net"): "name\tmac\n" lines. */
static void read_net(walker *w, int32_t dev, int dfd, const char *path)
{
    int fd = open_net(w, dev, dfd, path);
    if (fd < 0)
        return;
    netscan ns = {dev, fd};
    w->tmp.len = 0;
    int rc = list_dir(w, fd, net_cb, &ns);
    fd_done(w, fd);
    if (rc && rc != ENOMEM)
        simple_problem(w, dev, FV_A_NET, FV_P_UNREADABLE, rc, 0, "net");
    put_netdevs(w, dev);
}

/* Raw VPD of `path` under `dfd` (type: its d_type, see read_file); an absent file is no problem
 * (no VPD capability). */
static void read_vpd(walker *w, int32_t dev, int dfd, const char *path, unsigned char type)
{
    fv_device *d = &w->r->devices[dev];
    size_t len;
    int err;
    int rc = read_file(w, dfd, path, type, w->vpd, FV_VPD_CAP, &len, &err, 1);
    if (rc == RD_ERR) {
        if (err != ENOENT)
            simple_problem(w, dev, FV_A_VPD, FV_P_UNREADABLE, err, 0, "vpd");
        return;
    }
    if (rc == RD_NOTREG) {
        simple_problem(w, dev, FV_A_VPD, FV_P_NOT_REGULAR, 0, err, "vpd");
        return;
    }
    if (rc == RD_TOOLONG)
        simple_problem(w, dev, FV_A_VPD, FV_P_TOO_LONG, 0, FV_VPD_CAP, "vpd");
    d->vpd_off = sb_put(w, &w->str, w->vpd, len);
    d->vpd_len = d->vpd_off < 0 ? -1 : (int32_t)len;
}

/* ---- SR-IOV: VFs of one PF ------------------------------------------------------------------- */

/* What `path` under `dfd` leads to, symlinks followed (path NULL: `dfd` itself): 0 or an errno
 * value. A link is trusted only when it leads to the very directory the tree's own entry leads to
 * (same st_dev and st_ino): a link's last path component proves nothing. */
static int stat_at(walker *w, int dfd, const char *path, struct stat *st)
{
    w->c->fstat++;
    int rc = path ? fstatat(dfd, path, st, 0) : fstat(dfd, st);
    return rc == 0 ? 0 : errno;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* readlinkat `name` (virtfn<N>) of the PF dir into t (*tlen bytes); returns the device index its
 * last component names, or -1 (gone, or a problem was recorded on the PF). */
static int32_t resolve_virtfn(walker *w, int32_t pf, int pfd, const char *name, char t[LINK_CAP],
                              size_t *tlen)
{
    ssize_t n = c_readlinkat(w->c, pfd, name, t, LINK_CAP);
    if (n < 0) {
        if (errno == EINVAL)
            simple_problem(w, pf, FV_A_VIRTFN, FV_P_NOT_LINK, 0, 0, name);
        else if (errno != ENOENT)
            simple_problem(w, pf, FV_A_VIRTFN, FV_P_UNREADABLE, errno, 0, name);
        return -1;
    }
    if ((size_t)n >= LINK_CAP) {
        simple_problem(w, pf, FV_A_VIRTFN, FV_P_TOO_LONG, 0, LINK_CAP, name);
        return -1;
    }
    *tlen = (size_t)n;
    const char *base;
    size_t baselen;
    int32_t j = link_target(w, t, (size_t)n, &base, &baselen);
    if (j == -2)
        problem(w, pf, FV_A_VIRTFN, FV_P_GARBAGE, 0, 0, name, strlen(name), t, (size_t)n, 1);
    else if (j < 0)
        problem(w, pf, FV_A_VIRTFN, FV_P_DANGLING, 0, 0, name, strlen(name), t, (size_t)n, 1);
    return j < 0 ? -1 : j;
}

/* Fallback: every virtfn link is read, and the VF it names is the PF's only when the link leads to
 * the tree's own directory of that VF and the VF's physfn leads back to this PF (`pst`). The VFs
 * are then read normally by the main loop. A VF two links name gets no VF number. */
static void vfs_by_links(walker *w, int32_t pf, int pfd, const struct stat *pst)
{
    fv_device *devs = w->r->devices;
    for (size_t k = 0; k < w->vfn_len; k++) {
        int32_t vfnum = w->vfn[k];
        char name[32], t[LINK_CAP];
        size_t tlen = 0;
        snprintf(name, sizeof name, "virtfn%d", (int)vfnum);
        int32_t j = resolve_virtfn(w, pf, pfd, name, t, &tlen);
        if (j < 0)
            continue;
        if (j == pf) {
            problem(w, pf, FV_A_VIRTFN, FV_P_GARBAGE, 0, 0, name, strlen(name), "itself", 6, 1);
            continue;
        }
        char a[ADDR_MAX + 8];
        size_t alen = fmt_addr(w->keys[j], a);
        if (devs[j].parent >= 0 && devs[j].parent != pf) {
            problem(w, pf, FV_A_VIRTFN, FV_P_CLAIMED, 0, devs[j].parent, name, strlen(name), a,
                    alen, 1);
            continue;
        }
        struct stat via, own;
        int err = stat_at(w, pfd, name, &via);
        if (err) {
            if (err == ENOENT)
                problem(w, pf, FV_A_VIRTFN, FV_P_DANGLING, 0, 0, name, strlen(name), t, tlen, 1);
            else
                simple_problem(w, pf, FV_A_VIRTFN, FV_P_UNREADABLE, err, 0, name);
            continue;
        }
        if (stat_at(w, w->devfd, a, &own) || !S_ISDIR(own.st_mode) || !same_file(&via, &own)) {
            problem(w, pf, FV_A_VIRTFN, FV_P_NOT_OWN, 0, 0, name, strlen(name), t, tlen, 1);
            continue;
        }
        memcpy(a + alen, "/physfn", 8);
        if (stat_at(w, w->devfd, a, &via) || !same_file(&via, pst)) {
            problem(w, pf, FV_A_VIRTFN, FV_P_NOT_BACK, 0, 0, name, strlen(name), a, alen, 1);
            continue;
        }
        if (devs[j].parent == pf) { /* another link of this PF named it already */
            char pa[ADDR_MAX + 1];
            size_t plen = fmt_addr(w->keys[pf], pa);
            int32_t first = (w->state[j] & ST_DUP) ? -1 : devs[j].vf_num;
            devs[j].vf_num = -1;
            w->state[j] |= ST_DUP;
            problem(w, j, FV_A_VIRTFN, FV_P_DUPLICATE, first, vfnum, "", 0, pa, plen, 1);
            continue;
        }
        devs[j].kind = FV_KIND_VF;
        devs[j].parent = pf;
        devs[j].vf_num = vfnum;
        devs[j].flags |= FV_F_LINKED;
    }
}

/* The identity files of a VF directory as its listing shows them (only FV_A_* names are kept). */
typedef struct {
    uint8_t present[FV_A_COUNT];
    uint8_t type[FV_A_COUNT];
} attrscan;

static int attr_cb(walker *w, void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)w;
    attrscan *as = ctx;
    int a = known_attr(name, len);
    if (a >= 0) {
        as->present[a] = 1;
        as->type[a] = type;
    }
    return 0;
}

/* Read one identity file of the first VF from its directory `vfd` (listed in `as`): 0 ok, 1 no
 * numa_node file, -1 failed (absent, not a regular file, unreadable or unparsable). */
static int vf0_attr(walker *w, int vfd, const attrscan *as, int a, int32_t *out)
{
    unsigned char buf[FV_ATTR_CAP + 1];
    size_t len;
    int err;
    *out = -1;
    if (!as->present[a])
        return a == FV_A_NUMA_NODE ? 1 : -1;
    if (!regular_or_unknown(as->type[a]))
        return -1;
    if (read_file(w, vfd, attr_file[a], as->type[a], buf, FV_ATTR_CAP, &len, &err, 0) != RD_OK)
        return -1;
    int64_t v = parse_num(buf, len, attr_fmt[a], attr_max[a]);
    if (v < -1)
        return -1;
    *out = (int32_t)v;
    return 0;
}

/* Check the computed VFs before they are filled in without being read (vfidx holds them):
 * - virtfn0 and the last virtfn lead to the directories bus/pci/devices/<computed address> leads
 *   to (so the links name the tree's own functions, not a look-alike elsewhere);
 * - the first VF's physfn leads back to the PF (`pst`): the function there is this PF's VF;
 * - its vendor, device, class and numa_node are what the PF implies.
 * The first VF is opened through bus/pci/devices, never through the PF's link: one listing, then
 * open + read per file, no fstat for listed regular files. Returns 0, or the FV_R_* reason with
 * *rvf the VF it is about and *rerr the VF number (FV_R_LINK) or the attribute. *vf0_net says
 * whether the first VF's listing shows a net/ (see net_index). */
static int check_vfs(walker *w, int pfd, const dirscan *ds, const fv_device *p, int32_t count,
                     const struct stat *pst, int *rerr, int32_t *rvf,
                     int *vf0_net)
{
    static const int check[] = {FV_A_VENDOR, FV_A_DEVICE, FV_A_CLASS, FV_A_NUMA_NODE};
    int32_t want[4] = {p->vendor, p->vf_device, p->class_code, p->numa_node};
    char addr[ADDR_MAX + 1], link[32];
    struct stat own, via;
    *rvf = 0;
    fmt_addr(w->keys[w->vfidx[0]], addr);
    int vfd = w_openat(w, w->devfd, addr, OPEN_DIR);
    if (vfd < 0) {
        *rerr = FV_A_ENTRY;
        return FV_R_VF_UNREADABLE;
    }
    int reason = 0;
    if (stat_at(w, vfd, NULL, &own) || stat_at(w, pfd, "virtfn0", &via) || !same_file(&own, &via)) {
        *rerr = 0;
        reason = FV_R_LINK;
    }
    if (!reason && count > 1) {
        fmt_addr(w->keys[w->vfidx[count - 1]], addr);
        snprintf(link, sizeof link, "virtfn%d", (int)(count - 1));
        if (stat_at(w, w->devfd, addr, &own) || !S_ISDIR(own.st_mode) ||
            stat_at(w, pfd, link, &via) || !same_file(&own, &via)) {
            *rvf = *rerr = count - 1;
            reason = FV_R_LINK;
        }
    }
    attrscan as;
    memset(&as, 0, sizeof as);
    if (!reason && list_dir(w, vfd, attr_cb, &as) != 0) {
        *rerr = FV_A_ENTRY;
        reason = FV_R_VF_UNREADABLE;
    }
    if (!reason && (!as.present[FV_A_PHYSFN] || stat_at(w, vfd, "physfn", &via) ||
                    !same_file(&via, pst))) {
        *rerr = FV_A_PHYSFN;
        reason = FV_R_PHYSFN;
    }
    for (int k = 0; k < 4 && !reason; k++) {
        int32_t got;
        int rc = vf0_attr(w, vfd, &as, check[k], &got);
        if (rc < 0 || (rc == 1 && ds->present[FV_A_NUMA_NODE])) {
            reason = FV_R_VF_UNREADABLE;
            *rerr = check[k];
        } else if (got != want[k] || want[k] < (check[k] == FV_A_NUMA_NODE ? -1 : 0)) {
            reason = FV_R_MISMATCH;
            *rerr = check[k];
        }
    }
    *vf0_net = as.present[FV_A_NET];
    fd_done(w, vfd);
    return reason;
}

/* ---- which VFs own a netdev ------------------------------------------------------------------
 * Nova gives a VF a parent_ifname only when the VF itself owns a netdev, so the walk must know
 * that for VFs it never reads. One listing of class/net and one readlinkat per netdev tell it for
 * every function at once: a netdev of a PCI function links to ../../devices/<path>/<addr>/net/<if>
 * (virtual netdevs such as lo link into devices/virtual and name no PCI address). Hosts whose VFs
 * have no netdevs (vfio-pci, the DPU case) pay nothing per VF. */

/* One class/net entry into the snapshot w->snap ("<inode> <name>\n"). */
static int snap_cb(walker *w, void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)ctx;
    (void)type;
    char ino[24];
    int n = snprintf(ino, sizeof ino, "%llu ", (unsigned long long)w->dent_ino);
    if (sb_put(w, &w->snap, ino, (size_t)n) < 0 || sb_put(w, &w->snap, name, len) < 0 ||
        sb_put(w, &w->snap, "\n", 1) < 0)
        return ENOMEM;
    return 0;
}

/* The snapshot into the result (class_net_off/len), once class/net was listed whole. */
static void keep_snapshot(walker *w)
{
    w->r->class_net_off = sb_put(w, &w->str, w->snap.p, w->snap.len);
    w->r->class_net_len = w->r->class_net_off < 0 ? -1 : (int32_t)w->snap.len;
}

static int net_index_cb(walker *w, void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)type;
    int netfd = *(int *)ctx;
    char t[LINK_CAP];
    static const char prefix[] = "../../devices/";
    if (snap_cb(w, NULL, name, len, type))
        return ENOMEM;
    ssize_t n = c_readlinkat(w->c, netfd, name, t, sizeof t);
    if (n < 0 || (size_t)n >= sizeof t)
        return 0; /* gone meanwhile, not a link, or absurdly long: names no function */
    size_t tl = (size_t)n, pl = sizeof prefix - 1;
    /* <prefix> ... / <addr> /net/ <name> */
    if (tl < pl + ADDR_MIN + 6 + len || memcmp(t, prefix, pl) != 0)
        return 0;
    const char *tail = t + tl - len - 5;
    if (memcmp(tail, "/net/", 5) != 0 || memcmp(tail + 5, name, len) != 0)
        return 0;
    const char *addr = tail;
    while (addr > t + pl && addr[-1] != '/')
        addr--;
    if (addr == t + pl && addr[-1] != '/')
        return 0;
    for (const char *q = t + pl; q + 2 < tail; q++) /* no ".." component after the prefix */
        if (q[0] == '.' && q[1] == '.' && q[-1] == '/' && (q[2] == '/'))
            return 0;
    int64_t key = parse_addr(addr, (size_t)(tail - addr));
    if (key < 0)
        return 0;
    int32_t j = lookup(w, (uint64_t)key);
    if (j >= 0 && w->netcount[j] < UINT8_MAX)
        w->netcount[j]++;
    return 0;
}

/* List class/net once (w->class_net is 0 when the tree has none: copied trees often lack it). */
static void net_index(walker *w)
{
    w->netcount = calloc(w->n ? (size_t)w->n : 1, 1);
    if (!w->netcount) {
        w->oom = 1;
        return;
    }
    int fd = w_openat(w, w->rootfd, "class/net", OPEN_DIR);
    if (fd < 0)
        return;
    int rc = list_dir(w, fd, net_index_cb, &fd);
    fd_done(w, fd);
    fd_flush(w);
    if (rc == ENOMEM) {
        w->oom = 1;
    } else if (rc == 0) {
        w->class_net = 1;
        keep_snapshot(w);
    } else {
        memset(w->netcount, 0, (size_t)w->n); /* a half-read index is no index */
    }
}

static int count_cb(walker *w, void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)w;
    (void)name;
    (void)len;
    (void)type;
    ++*(int *)ctx;
    return 0;
}

/* Without a usable class/net: does VF `j` own a netdev? One openat of <addr>/net (ENOENT: no). */
static int vf_has_netdev(walker *w, int32_t j)
{
    char path[ADDR_MAX + 5];
    size_t alen = fmt_addr(w->keys[j], path);
    memcpy(path + alen, "/net", 5);
    int fd = w_openat(w, w->devfd, path, OPEN_DIR);
    if (fd < 0)
        return 0;
    int entries = 0;
    list_dir(w, fd, count_cb, &entries);
    fd_done(w, fd);
    return entries > 0;
}

/* The listed devices a PF's VFs are at by its SR-IOV layout, into w->vfidx: 0, or the FV_R_*
 * reason they are not (*rerr the VF number, *rkey its key). */
static int computed_vfs(walker *w, int32_t pf, int32_t count, int *rerr, uint64_t *rkey)
{
    fv_device *devs = w->r->devices;
    const fv_device *p = &devs[pf];
    if (p->sriov_offset < 1 || p->sriov_stride < 0 || (count > 1 && p->sriov_stride < 1) ||
        p->vf_device < 0)
        return FV_R_NO_LAYOUT;
    int32_t *vfidx = grow(w, w->vfidx, &w->vfidx_cap, (size_t)count, sizeof *vfidx);
    if (!vfidx)
        return FV_R_NO_LAYOUT; /* w->oom is set: the walk ends */
    w->vfidx = vfidx;
    uint64_t domain = w->keys[pf] >> 16, rid0 = w->keys[pf] & 0xffff;
    uint64_t last = rid0 + (uint64_t)p->sriov_offset +
                    (uint64_t)(count - 1) * (uint64_t)p->sriov_stride;
    if (last > 0xffff)
        return FV_R_RID_RANGE;
    int32_t j = pf + 1;
    for (int32_t v = 0; v < count; v++) {
        uint64_t rid = rid0 + (uint64_t)p->sriov_offset + (uint64_t)v * (uint64_t)p->sriov_stride;
        *rkey = domain << 16 | rid;
        while (j < w->n && w->keys[j] < *rkey)
            j++; /* keys ascend with v (stride >= 1): one merge pass over the listing */
        if (j >= w->n || w->keys[j] != *rkey) {
            *rerr = v;
            return FV_R_NOT_LISTED;
        }
        if ((w->state[j] & ST_DONE) || devs[j].parent >= 0) {
            *rerr = v;
            return FV_R_CLAIMED;
        }
        w->vfidx[v] = j;
        j++;
    }
    return 0;
}

/* Fill the PF's VFs (w->vfidx) from the PF without reading them. Which own a netdev comes from
 * class/net, or with `probe_net` from each VF's net/. */
static void fill_vfs(walker *w, int32_t pf, int32_t count, int probe_net)
{
    fv_device *devs = w->r->devices;
    const fv_device *p = &devs[pf];
    for (int32_t v = 0; v < count; v++) {
        int32_t j = w->vfidx[v];
        fv_device *d = &devs[j];
        d->kind = FV_KIND_VF;
        d->parent = pf;
        d->vf_num = v;
        d->vendor = p->vendor;
        d->device = p->vf_device;
        d->class_code = p->class_code;
        d->numa_node = p->numa_node;
        d->flags |= FV_F_INFERRED | (v == 0 ? FV_F_VERIFIED : 0);
        w->state[j] |= ST_DONE;
        if (probe_net ? vf_has_netdev(w, j) : w->netcount[j] > 0)
            d->flags |= FV_F_NETDEV;
        if (w->flags & FV_VF_VPD) {
            char path[ADDR_MAX + 8];
            size_t alen = fmt_addr(w->keys[j], path);
            memcpy(path + alen, "/vpd", 5);
            read_vpd(w, j, w->devfd, path, DT_UNKNOWN);
        }
    }
}

static void vfs_of_pf(walker *w, int32_t pf, int pfd, const dirscan *ds)
{
    fv_device *devs = w->r->devices;
    fv_device *p = &devs[pf];
    int32_t count = ds->nvirtfn;
    int reason = 0, rerr = -1;
    uint64_t rkey = 0;
    struct stat pst; /* the PF's own directory: what its VFs' physfn must lead to */
    int err = stat_at(w, pfd, NULL, &pst);
    if (err) {
        simple_problem(w, pf, FV_A_ENTRY, FV_P_UNREADABLE, err, 0, "");
        return;
    }

    if (ds->maxvirtfn != count - 1)
        reason = FV_R_NAMES; /* names are canonical and distinct: max == count-1 <=> 0..count-1 */
    else
        reason = computed_vfs(w, pf, count, &rerr, &rkey);
    int vf0_net = 0;
    if (!reason) {
        int32_t rvf = 0;
        reason = check_vfs(w, pfd, ds, p, count, &pst, &rerr, &rvf, &vf0_net);
        rkey = w->keys[w->vfidx[rvf]];
    }
    if (reason) {
        char a[ADDR_MAX + 1];
        size_t alen = fmt_addr(rkey, a);
        int with = reason >= FV_R_NOT_LISTED;
        problem(w, pf, FV_A_VIRTFN, FV_P_VF_FALLBACK, rerr, reason, "", 0, a, alen, with);
        vfs_by_links(w, pf, pfd, &pst);
        return;
    }
    /* class/net answers for every VF unless it is missing or disagrees with the first VF's own
     * listing; then each VF's net/ is looked at. */
    fill_vfs(w, pf, count, !w->class_net || (vf0_net != 0) != (w->netcount[w->vfidx[0]] > 0));
}

/* ---- one device ------------------------------------------------------------------------------ */

/* The device directory could not be opened. */
static void entry_error(walker *w, int32_t dev, const char *name, int err)
{
    fv_device *d = &w->r->devices[dev];
    if (err == ENOENT) {
        struct stat st;
        w->c->fstat++;
        if (fstatat(w->devfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
            char t[LINK_CAP];
            ssize_t n = c_readlinkat(w->c, w->devfd, name, t, sizeof t);
            if (n < 0 || (size_t)n >= sizeof t)
                n = 0;
            problem(w, dev, FV_A_ENTRY, FV_P_DANGLING, 0, 0, "", 0, t, (size_t)n, 1);
            d->flags |= FV_F_BROKEN;
        } else {
            d->flags |= FV_F_GONE; /* the entry itself went away: the device is gone */
        }
    } else if (err == ENOTDIR) {
        simple_problem(w, dev, FV_A_ENTRY, FV_P_NOT_DIR, 0, 0, "");
        d->flags |= FV_F_BROKEN;
    } else {
        simple_problem(w, dev, FV_A_ENTRY, FV_P_UNREADABLE, err, 0, "");
        d->flags |= FV_F_BROKEN;
    }
}

static void read_device(walker *w, int32_t i)
{
    fv_result *r = w->r;
    fv_device *d = &r->devices[i];
    char name[ADDR_MAX + 1];
    fmt_addr(w->keys[i], name);
    int32_t p0 = r->n_problems;
    w->state[i] |= ST_DONE;

    int dfd = w_openat(w, w->devfd, name, OPEN_DIR);
    if (dfd < 0) {
        entry_error(w, i, name, errno);
        return;
    }
    dirscan ds;
    memset(&ds, 0, sizeof ds);
    ds.dev = i;
    ds.maxvirtfn = -1;
    w->vfn_len = 0;
    int rc = list_dir(w, dfd, device_dir_cb, &ds);
    if (rc == ENOENT)
        goto gone;
    if (rc) {
        if (rc != ENOMEM)
            simple_problem(w, i, FV_A_ENTRY, FV_P_UNREADABLE, rc, 0, "");
        d->flags |= FV_F_BROKEN;
        fd_done(w, dfd);
        return;
    }
    if (ds.present[FV_A_PHYSFN]) {
        w->state[i] |= ST_PHYSFN;
        d->kind = FV_KIND_VF; /* a VF even when no PF claimed it (see the orphan pass) */
    }

    static const int ids[] = {FV_A_VENDOR, FV_A_DEVICE, FV_A_CLASS, FV_A_NUMA_NODE};
    int32_t *fields[] = {&d->vendor, &d->device, &d->class_code, &d->numa_node};
    for (int k = 0; k < 4; k++)
        if (get_attr(w, dfd, &ds, ids[k], ids[k] != FV_A_NUMA_NODE, fields[k]) == V_GONE)
            goto gone;
    if (ds.present[FV_A_SRIOV_TOTALVFS]) {
        if (get_attr(w, dfd, &ds, FV_A_SRIOV_TOTALVFS, 1, &d->total_vfs) == V_GONE ||
            get_attr(w, dfd, &ds, FV_A_SRIOV_OFFSET, 0, &d->sriov_offset) == V_GONE ||
            get_attr(w, dfd, &ds, FV_A_SRIOV_STRIDE, 0, &d->sriov_stride) == V_GONE ||
            get_attr(w, dfd, &ds, FV_A_SRIOV_VF_DEVICE, 0, &d->vf_device) == V_GONE)
            goto gone;
    }
    if (d->kind != FV_KIND_VF && (d->total_vfs > 0 || ds.nvirtfn > 0)) {
        d->kind = FV_KIND_PF;
        d->num_vfs = ds.nvirtfn;
        if (d->total_vfs >= 0 && ds.nvirtfn > d->total_vfs) /* more VFs than the PF can have */
            simple_problem(w, i, FV_A_SRIOV_TOTALVFS, FV_P_BELOW_LINKS, d->total_vfs, ds.nvirtfn,
                           "sriov_totalvfs");
    }

    d->flags |= FV_F_DETAILS;
    if (ds.present[FV_A_DRIVER])
        read_driver(w, i, dfd, "driver");
    if (ds.present[FV_A_NET]) {
        read_net(w, i, dfd, "net");
    } else {
        d->netdev_off = sb_put(w, &w->str, "", 0);
        d->netdev_len = d->netdev_off < 0 ? -1 : 0;
    }
    int want_vpd = (w->flags & (d->kind == FV_KIND_VF ? FV_VF_VPD : FV_READ_VPD)) != 0;
    if (ds.present[FV_A_VPD])
        d->flags |= FV_F_HAS_VPD;
    if (want_vpd && ds.present[FV_A_VPD]) {
        if (regular_or_unknown(ds.type[FV_A_VPD]))
            read_vpd(w, i, dfd, "vpd", ds.type[FV_A_VPD]);
        else
            simple_problem(w, i, FV_A_VPD, FV_P_NOT_REGULAR, 0, ds.type[FV_A_VPD], "vpd");
    }
    if (d->kind == FV_KIND_PF && ds.nvirtfn > 0)
        vfs_of_pf(w, i, dfd, &ds);
    fd_done(w, dfd);
    return;
gone:
    r->n_problems = p0; /* what a vanishing device looked like on its way out is no problem */
    d->flags |= FV_F_GONE;
    fd_done(w, dfd);
}

/* A device with a physfn link that no PF listed: its PF for the record, when the link leads to
 * the tree's own directory of a PF. */
static void orphan_vf(walker *w, int32_t i)
{
    fv_device *d = &w->r->devices[i];
    char path[ADDR_MAX + 8], t[LINK_CAP];
    size_t alen = fmt_addr(w->keys[i], path);
    memcpy(path + alen, "/physfn", 8);
    ssize_t n = c_readlinkat(w->c, w->devfd, path, t, sizeof t);
    if (n < 0) {
        if (errno == ENOENT)
            d->flags |= FV_F_GONE;
        else if (errno == EINVAL)
            simple_problem(w, i, FV_A_PHYSFN, FV_P_NOT_LINK, 0, 0, "physfn");
        else
            simple_problem(w, i, FV_A_PHYSFN, FV_P_UNREADABLE, errno, 0, "physfn");
        return;
    }
    if ((size_t)n >= sizeof t) {
        simple_problem(w, i, FV_A_PHYSFN, FV_P_TOO_LONG, 0, LINK_CAP, "physfn");
        return;
    }
    const char *base;
    size_t baselen;
    int32_t p = link_target(w, t, (size_t)n, &base, &baselen);
    if (p < 0 || p == i || w->r->devices[p].kind != FV_KIND_PF) {
        problem(w, i, FV_A_PHYSFN, FV_P_DANGLING, 0, 0, "physfn", 6, t, (size_t)n, 1);
        return;
    }
    char pa[ADDR_MAX + 1];
    fmt_addr(w->keys[p], pa);
    struct stat via, own;
    if (stat_at(w, w->devfd, path, &via) || stat_at(w, w->devfd, pa, &own) || !same_file(&via, &own)) {
        problem(w, i, FV_A_PHYSFN, FV_P_NOT_OWN, 0, 0, "physfn", 6, t, (size_t)n, 1);
        return;
    }
    d->parent = p;
    problem(w, i, FV_A_PHYSFN, FV_P_ORPHAN_VF, 0, 0, "physfn", 6, t, (size_t)n, 1);
}

/* ---- entry points ---------------------------------------------------------------------------- */

/* Allocate the result and open <root>/bus/pci/devices into w->devfd. 0 ok, else r->error set. */
static int start(walker *w, const char *root)
{
    memset(w, 0, sizeof *w);
    w->rootfd = w->devfd = -1;
    w->r = calloc(1, sizeof(fv_result));
    if (!w->r)
        return -1;
    w->c = &w->r->counters;
    w->r->n_listed = -1;
    w->r->class_net_off = w->r->class_net_len = -1;
    w->dents = malloc(DENTS_BUF);
    if (!w->dents) {
        w->r->error = FV_E_NOMEM;
        return -1;
    }
    w->rootfd = c_openat(w->c, AT_FDCWD, root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_PATH);
    if (w->rootfd < 0) {
        w->r->error = FV_E_ROOT;
        w->r->error_errno = errno;
        return -1;
    }
    w->devfd = c_openat(w->c, w->rootfd, "bus/pci/devices", OPEN_DIR);
    int err = errno;
    if (w->devfd < 0) {
        w->r->error = FV_E_NOT_SYSFS;
        w->r->error_errno = err;
        return -1;
    }
    /* One fstatfs per walk tells whether directory listings can stop at the end-of-directory
     * d_off (see list_dir). It looks at bus/pci/devices only: the tree is one file system in
     * practice (all of /sys is sysfs). Were a directory below mounted from another file system,
     * skipping the last call could only go wrong if a signal cut its listing short exactly
     * before an entry whose position there is INT32_MAX or INT64_MAX. */
    struct statfs sf;
    w->c->fstat++;
    if (fstatfs(w->devfd, &sf) == 0)
        w->eod_marker = sf.f_type == SYSFS_MAGIC_ || sf.f_type == TMPFS_MAGIC_;
    return 0;
}

/* A result whose walk failed: everything but the error and the counters goes. */
static fv_result *finish_failed(fv_result *r)
{
    free(r->devices);
    free(r->problems);
    free(r->addresses);
    free(r->inodes);
    free(r->probes);
    free(r->strings);
    free(r->columns);
    free(r->address_offsets);
    free(r->extra_rows);
    r->devices = NULL;
    r->problems = NULL;
    r->addresses = NULL;
    r->inodes = NULL;
    r->probes = NULL;
    r->strings = NULL;
    r->columns = r->address_offsets = r->extra_rows = NULL;
    r->n_listed = -1;
    r->n_probes = r->n_extra = 0;
    r->class_net_off = r->class_net_len = -1;
    r->addresses_len = 0;
    r->n_devices = r->n_problems = 0;
    r->strings_len = 0;
    return r;
}

/* The devices field by field too, where each address starts, and the rows with a string (see
 * fv_result): what a decoder needs without walking the records. 0, or -1 out of memory. */
static int by_columns(fv_result *r)
{
    size_t n = (size_t)r->n_devices;
    if (n == 0)
        return 0;
    r->columns = malloc(n * FV_N_INTS * sizeof(int32_t));
    r->address_offsets = malloc((n + 1) * sizeof(int32_t));
    r->extra_rows = malloc(n * sizeof(int32_t));
    if (!r->columns || !r->address_offsets || !r->extra_rows)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const int32_t *rec = &r->devices[i].vendor;
        for (size_t k = 0; k < FV_N_INTS; k++)
            r->columns[k * n + i] = rec[k];
        const fv_device *d = &r->devices[i];
        r->flags_any |= d->flags;
        if (d->driver_off >= 0 || d->netdev_off >= 0 || d->vpd_off >= 0)
            r->extra_rows[r->n_extra++] = (int32_t)i;
    }
    /* the names are separated by one newline: each starts after the one before; the last
     * "offset" is where a name after the last would start */
    size_t i = 0;
    r->address_offsets[0] = 0;
    for (int64_t k = 0; k < r->addresses_len && i < n; k++)
        if (r->addresses[k] == '\n')
            r->address_offsets[++i] = (int32_t)(k + 1);
    while (i < n)
        r->address_offsets[++i] = (int32_t)r->addresses_len + 1;
    return 0;
}

/* Hand over the buffers to the result (or drop them all on failure) and release the rest. */
static fv_result *finish(walker *w)
{
    fv_result *r = w->r;
    if (w->rootfd >= 0)
        fd_done(w, w->rootfd);
    if (w->devfd >= 0)
        fd_done(w, w->devfd);
    fd_flush(w);
    free(w->dents);
    free(w->vpd);
    free(w->keys);
    free(w->state);
    free(w->vfn);
    free(w->vfidx);
    free(w->netcount);
    free(w->tmp.p);
    free(w->snap.p);
    free(w->reuse_keys);
    if (!r) {
        free(w->str.p);
        return NULL;
    }
    if (w->oom && !r->error)
        r->error = w->oom == 2 ? FV_E_TOO_BIG : FV_E_NOMEM;
    if (r->error) {
        free(w->str.p);
        return finish_failed(r);
    }
    r->strings = w->str.p;
    r->strings_len = (int64_t)w->str.len;
    if (by_columns(r)) {
        r->error = FV_E_NOMEM;
        return finish_failed(r);
    }
    return r;
}

static void init_device(fv_device *d)
{
    d->vendor = d->device = d->class_code = d->numa_node = -1;
    d->kind = FV_KIND_PLAIN;
    d->parent = d->vf_num = d->total_vfs = d->num_vfs = -1;
    d->sriov_offset = d->sriov_stride = d->vf_device = -1;
    d->flags = 0;
    d->driver_off = d->driver_len = d->netdev_off = d->netdev_len = d->vpd_off = d->vpd_len = -1;
}

/* Devices array and state for w->n keys. */
static int alloc_devices(walker *w)
{
    fv_result *r = w->r;
    size_t n = (size_t)w->n;
    r->devices = malloc((n ? n : 1) * sizeof(fv_device));
    w->state = calloc(n ? n : 1, 1);
    if (!r->devices || !w->state) {
        w->oom = 1;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        init_device(&r->devices[i]);
    r->n_devices = w->n;
    return 0;
}

/* r->addresses: the names of the w->n keys with a newline between two (see fv_result). */
static int name_devices(walker *w)
{
    fv_result *r = w->r;
    size_t n = (size_t)w->n, len = 0;
    r->addresses = malloc(n ? n * (ADDR_MAX + 1) : 1); /* n names, n - 1 newlines, one NUL */
    if (!r->addresses) {
        w->oom = 1;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (i)
            r->addresses[len++] = '\n';
        len += fmt_addr(w->keys[i], r->addresses + len);
    }
    r->addresses[len] = '\0';
    r->addresses_len = (int64_t)len;
    return 0;
}

static size_t next_name(const char *addresses, size_t len, size_t *pos, const char **name);

/* The listing the caller gives (fv_rewalk): its names into w->keys (sorted, each once) and their
 * inode numbers into r->inodes, an entry's lstat'ed where the caller does not know it. */
static int given_listing(walker *w, const fv_rewalk_args *a)
{
    fv_result *r = w->r;
    size_t count = a->listing_len > 0;
    for (size_t i = 0; i < a->listing_len; i++)
        count += a->listing[i] == '\n';
    if (count > (size_t)INT32_MAX / sizeof(fv_device)) {
        w->oom = 2;
        return -1;
    }
    keyino *kv = malloc((count ? count : 1) * sizeof *kv);
    if (!kv) {
        w->oom = 1;
        return -1;
    }
    size_t pos = 0, n = 0;
    for (size_t i = 0; i < count; i++) {
        const char *name;
        size_t nl = next_name(a->listing, a->listing_len, &pos, &name);
        int64_t key = parse_addr(name, nl);
        if (key < 0)
            continue;
        kv[n].key = (uint64_t)key;
        kv[n++].ino = a->listing_inodes ? a->listing_inodes[i] : 0;
    }
    sort_keys(kv, n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || kv[m - 1].key != kv[i].key)
            kv[m++] = kv[i];
    w->keys = malloc((m ? m : 1) * sizeof *w->keys);
    r->inodes = malloc((m ? m : 1) * sizeof *r->inodes);
    if (!w->keys || !r->inodes) {
        free(kv);
        w->oom = 1;
        return -1;
    }
    for (size_t i = 0; i < m; i++) {
        w->keys[i] = kv[i].key;
        r->inodes[i] = kv[i].ino;
        if (!kv[i].ino) {
            char name[ADDR_MAX + 1];
            struct stat st;
            fmt_addr(kv[i].key, name);
            w->c->fstat++;
            if (fstatat(w->devfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                r->inodes[i] = (uint64_t)st.st_ino;
        }
    }
    free(kv);
    w->n = (int32_t)m;
    r->n_listed = w->n;
    return 0;
}

/* The caller's reuse names into keys (fv_rewalk). */
static int reuse_keys(walker *w, const fv_rewalk_args *a)
{
    w->reuse_keys = malloc((a->n_reuse ? a->n_reuse : 1) * sizeof *w->reuse_keys);
    if (!w->reuse_keys) {
        w->oom = 1;
        return -1;
    }
    size_t pos = 0;
    for (size_t i = 0; i < a->n_reuse; i++) {
        const char *name;
        size_t nl = next_name(a->reuse, a->reuse_len, &pos, &name);
        int64_t key = parse_addr(name, nl);
        w->reuse_keys[i] = key < 0 ? UINT64_MAX : (uint64_t)key;
    }
    return 0;
}

/* Copy device i from the caller's previous record when its entry is the same (fv_rewalk), and
 * compute a PF's VFs from its layout without reading them: the caller's probes vouch for them.
 * Returns 1 when the device was copied, 0 when it must be read. */
static int reuse_device(walker *w, int32_t i)
{
    const fv_rewalk_args *a = w->reuse;
    if (!a || !a->n_reuse)
        return 0;
    size_t lo = 0, hi = a->n_reuse;
    uint64_t key = w->keys[i];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->reuse_keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= a->n_reuse || w->reuse_keys[lo] != key || a->reuse_inodes[lo] != w->r->inodes[i] ||
        !w->r->inodes[i])
        return 0;
    const fv_device *prev = &a->reuse_devices[lo];
    if (prev->kind == FV_KIND_VF || (prev->flags & (FV_F_GONE | FV_F_BROKEN)))
        return 0;
    fv_device *d = &w->r->devices[i];
    *d = *prev;
    d->parent = d->vf_num = -1;
    d->driver_off = d->driver_len = d->netdev_off = d->netdev_len = d->vpd_off = d->vpd_len = -1;
    d->flags = (prev->flags & (FV_F_DETAILS | FV_F_NETDEV | FV_F_HAS_VPD)) | FV_F_REUSED;
    w->state[i] |= ST_DONE;
    if (d->kind == FV_KIND_PF && d->num_vfs > 0) {
        int rerr;
        uint64_t rkey;
        if (computed_vfs(w, i, d->num_vfs, &rerr, &rkey)) {
            init_device(d);
            w->state[i] &= (uint8_t)~ST_DONE;
            return 0;
        }
        fill_vfs(w, i, d->num_vfs, !w->class_net);
    }
    return 1;
}

fv_result *fv_rewalk(const char *root, int flags, const fv_rewalk_args *args)
{
    walker w;
    if (start(&w, root))
        return finish(&w);
    fv_result *r = w.r;
    w.flags = flags;
    w.no_close_range = (flags & FV_CLOSE_EACH) != 0;
    w.reuse = args;
    w.vpd = malloc(FV_VPD_CAP + 1);
    if (!w.vpd) {
        w.oom = 1;
        return finish(&w);
    }
    int listed = args && args->listing ? given_listing(&w, args) : list_bus(&w);
    if (listed || (args && reuse_keys(&w, args)) || alloc_devices(&w) || name_devices(&w))
        return finish(&w);
    net_index(&w);

    /* Address order: a PF sorts before its VFs (offset >= 1, same domain), so by the time the loop
     * reaches a VF its PF has either filled it (fast path) or claimed it (fallback). */
    for (int32_t i = 0; i < w.n && !w.oom; i++) {
        if (!(w.state[i] & ST_DONE) && !reuse_device(&w, i)) {
            read_device(&w, i);
            fd_flush(&w); /* all fds of the device in one close_range */
        }
    }
    for (int32_t i = 0; i < w.n && !w.oom; i++) {
        fv_device *d = &r->devices[i];
        if ((w.state[i] & ST_PHYSFN) && d->parent < 0 && !(d->flags & (FV_F_GONE | FV_F_BROKEN)))
            orphan_vf(&w, i);
    }
    return finish(&w);
}

fv_result *fv_walk(const char *root, int flags)
{
    return fv_rewalk(root, flags, NULL);
}

/* The next newline-terminated (or last) name of `addresses` from *pos; returns its length. */
static size_t next_name(const char *addresses, size_t len, size_t *pos, const char **name)
{
    size_t b = *pos, e = b;
    while (e < len && addresses[e] != '\n')
        e++;
    *name = addresses + b;
    *pos = e + 1;
    return e - b;
}

fv_result *fv_details(const char *root, const char *addresses, size_t len)
{
    walker w;
    if (start(&w, root))
        return finish(&w);
    fv_result *r = w.r;
    size_t count = len > 0;
    for (size_t i = 0; i < len; i++)
        count += addresses[i] == '\n';
    if (count > (size_t)INT32_MAX / sizeof(fv_device) || len > (size_t)INT32_MAX) {
        w.oom = 2;
        return finish(&w);
    }
    w.n = (int32_t)count;
    w.keys = calloc(count ? count : 1, sizeof(uint64_t));
    int64_t *keys = calloc(count ? count : 1, sizeof(int64_t));
    r->addresses = malloc(len + 1);
    if (!w.keys || !keys || !r->addresses) {
        free(keys);
        w.oom = 1;
        return finish(&w);
    }
    /* A valid name is canonical (parse_addr accepts nothing else), so the names given are the
     * names of the rows, as they are: the caller's text is the addresses text. */
    memcpy(r->addresses, addresses, len);
    r->addresses[len] = '\0';
    r->addresses_len = (int64_t)len;
    size_t pos = 0;
    for (size_t i = 0; i < count; i++) {
        const char *name;
        size_t nl = next_name(addresses, len, &pos, &name);
        keys[i] = parse_addr(name, nl);
        w.keys[i] = keys[i] < 0 ? 0 : (uint64_t)keys[i];
    }
    if (alloc_devices(&w)) {
        free(keys);
        return finish(&w);
    }
    pos = 0;
    for (size_t i = 0; i < count && !w.oom; i++) {
        fv_device *d = &r->devices[i];
        const char *given;
        size_t nl = next_name(addresses, len, &pos, &given);
        if (keys[i] < 0) { /* report the caller's bytes */
            problem(&w, (int32_t)i, FV_A_NAME, FV_P_BAD_NAME, 0, 0, given, nl, NULL, 0, 0);
            d->flags |= FV_F_BROKEN;
            continue;
        }
        char name[ADDR_MAX + 1];
        fmt_addr(w.keys[i], name);
        int dfd = w_openat(&w, w.devfd, name, OPEN_DIR);
        if (dfd < 0) {
            entry_error(&w, (int32_t)i, name, errno);
            continue;
        }
        d->flags |= FV_F_DETAILS;
        read_driver(&w, (int32_t)i, dfd, "driver");
        read_net(&w, (int32_t)i, dfd, "net");
        fd_done(&w, dfd);
        fd_flush(&w);
    }
    free(keys);
    return finish(&w);
}

/* The basename of the target of link `name` of dir `dfd` into strings (*off and *len, -1 when the
 * link is not there). Returns 1 when there is such an entry (a link or not), 0 when there is none. */
static int probe_link(walker *w, int dfd, const char *name, int32_t *off, int32_t *len)
{
    char t[LINK_CAP];
    *off = *len = -1;
    ssize_t n = c_readlinkat(w->c, dfd, name, t, sizeof t);
    if (n < 0)
        return errno != ENOENT;
    if ((size_t)n >= sizeof t)
        return 1;
    size_t b = (size_t)n;
    while (b > 0 && t[b - 1] != '/')
        b--;
    *off = sb_put(w, &w->str, t + b, (size_t)n - b);
    *len = *off < 0 ? -1 : (int32_t)((size_t)n - b);
    return 1;
}

/* ---- the prober: a Scanner's cheap re-check, with its directories kept open --------------------
 * A refresh of an unchanged host is nothing but this re-check, so its cost is the refresh's. On
 * this kind of tree a path lookup costs about as much as the syscall around it, so the prober
 * keeps what every probe would look up again: the root and bus/pci/devices, each PF's directory
 * (O_PATH) and its net/ directory. A held directory is the same kernel object until closed: a
 * PF (or net/) that the kernel removes leaves a dead directory where every lookup fails, which a
 * probe sees as links, driver and netdevs gone. That is the only identity it vouches for: a PF
 * re-created at its address is a PCI event (the bus/pci/devices listing shows its new inode).
 *
 * net/ is listed again only when it may have changed: its fstat (st_nlink counts its
 * subdirectories, st_size and the times move on tmpfs with every entry added or removed) equals
 * the one taken before the last listing, every name listed then was a directory (so st_nlink
 * accounts for all of them) and each still has its address file. Renaming a netdev leaves its old
 * name without one; on sysfs net/ holds nothing but the netdevs' directories. */

typedef struct held_pf {
    char name[ADDR_MAX + 1]; /* "" when the given name is no PCI address */
    int32_t count;           /* VF count the walk saw */
    int fd;                  /* the PF's directory (O_PATH), -1: not open */
    int netfd;               /* its net/, -1: not open */
    struct stat netst;       /* fstat of netfd before the listing that filled `names` */
    char *names;             /* net/'s names as last listed, NUL after each */
    size_t names_len;
    int32_t n_names;
    int all_dirs;            /* every one of them was a directory (d_type) */
} held_pf;

struct fv_prober {
    char *root;
    int rootfd, devfd, eod_marker;
    size_t n;
    held_pf *pf;
    /* The last bus/pci/devices listing as getdents64 gave it (d_ino and name, NUL after each)
     * and what it was made into: an unchanged listing is not parsed, sorted and named again. */
    unsigned char *seen;
    size_t seen_len;
    char *addresses;
    size_t addresses_len;
    uint64_t *inodes;
    int32_t n_listed; /* -1: nothing kept (the listing had a problem, or none was read yet) */
};

fv_prober *fv_prober_new(const char *root, const char *pfs, size_t len, const int32_t *counts,
                         size_t n_pfs)
{
    if (n_pfs > (size_t)INT32_MAX / sizeof(fv_device) || len > (size_t)INT32_MAX)
        return NULL;
    fv_prober *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->root = strdup(root);
    p->pf = calloc(n_pfs ? n_pfs : 1, sizeof *p->pf);
    if (!p->root || !p->pf) {
        free(p->root);
        free(p->pf);
        free(p);
        return NULL;
    }
    p->rootfd = p->devfd = -1;
    p->n = n_pfs;
    p->n_listed = -1;
    size_t pos = 0;
    for (size_t i = 0; i < n_pfs; i++) {
        held_pf *h = &p->pf[i];
        const char *name;
        size_t nl = next_name(pfs, len, &pos, &name);
        int64_t key = parse_addr(name, nl);
        if (key >= 0)
            fmt_addr((uint64_t)key, h->name);
        h->count = counts[i] < 0 ? 0 : counts[i];
        h->fd = h->netfd = -1;
    }
    return p;
}

/* Drop the listing the prober kept (see struct fv_prober). */
static void forget_listing(fv_prober *p)
{
    free(p->seen);
    free(p->addresses);
    free(p->inodes);
    p->seen = NULL;
    p->addresses = NULL;
    p->inodes = NULL;
    p->n_listed = -1;
}

void fv_prober_free(fv_prober *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        if (p->pf[i].fd >= 0)
            close(p->pf[i].fd);
        if (p->pf[i].netfd >= 0)
            close(p->pf[i].netfd);
        free(p->pf[i].names);
    }
    if (p->devfd >= 0)
        close(p->devfd);
    if (p->rootfd >= 0)
        close(p->rootfd);
    forget_listing(p);
    free(p->pf);
    free(p->root);
    free(p);
}

/* The root and bus/pci/devices, opened by the first run that finds them. */
static int prober_root(walker *w, fv_prober *p)
{
    fv_result *r = w->r;
    if (p->devfd >= 0)
        return 0;
    if (p->rootfd < 0)
        p->rootfd = c_openat(w->c, AT_FDCWD, p->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_PATH);
    if (p->rootfd < 0) {
        r->error = FV_E_ROOT;
        r->error_errno = errno;
        return -1;
    }
    p->devfd = c_openat(w->c, p->rootfd, "bus/pci/devices", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_PATH);
    if (p->devfd < 0) {
        r->error = FV_E_NOT_SYSFS;
        r->error_errno = errno;
        return -1;
    }
    struct statfs sf; /* see start() */
    w->c->fstat++;
    if (fstatfs(p->devfd, &sf) == 0)
        p->eod_marker = sf.f_type == SYSFS_MAGIC_ || sf.f_type == TMPFS_MAGIC_;
    return 0;
}

static int same_dir_state(const struct stat *a, const struct stat *b)
{
    return a->st_nlink == b->st_nlink && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

typedef struct {
    netscan ns;
    held_pf *h;
    sbuf names;
} netlist;

static int held_net_cb(walker *w, void *ctx, const char *name, size_t len, unsigned char type)
{
    netlist *nl = ctx;
    if (sb_put(w, &nl->names, name, len) < 0 || sb_put(w, &nl->names, "", 1) < 0)
        return ENOMEM;
    nl->h->n_names++;
    if (type != DT_DIR)
        nl->h->all_dirs = 0;
    return net_cb(w, &nl->ns, name, len, type);
}

/* read_net() of a held PF, from the names it listed last time when net/ cannot have changed. */
static void held_net(walker *w, held_pf *h, int32_t dev)
{
    fv_result *r = w->r;
    w->tmp.len = 0;
    if (h->netfd >= 0 && h->all_dirs) {
        struct stat st;
        w->c->fstat++;
        if (fstat(h->netfd, &st) == 0 && same_dir_state(&st, &h->netst) &&
            st.st_nlink == (nlink_t)h->n_names + 2) {
            int32_t problems = r->n_problems;
            size_t strings = w->str.len;
            netscan ns = {dev, h->netfd};
            int rc = 0;
            for (size_t at = 0; at < h->names_len && !rc;) {
                size_t len = strlen(h->names + at);
                rc = net_cb(w, &ns, h->names + at, len, DT_DIR);
                at += len + 1;
            }
            if (rc == ENOMEM) {
                w->oom = 1;
                return;
            }
            if (r->n_problems == problems) {
                put_netdevs(w, dev);
                return;
            }
            /* a name without its address: listed again, and the problem is the listing's */
            r->n_problems = problems;
            w->str.len = strings;
            w->tmp.len = 0;
        }
    }
    if (h->netfd >= 0) {
        fd_done(w, h->netfd);
        h->netfd = -1;
    }
    free(h->names);
    h->names = NULL;
    h->names_len = 0;
    h->n_names = 0;
    int fd = open_net(w, dev, h->fd, "net");
    if (fd < 0)
        return;
    w->c->fstat++;
    int statted = fstat(fd, &h->netst) == 0;
    netlist nl = {{dev, fd}, h, {NULL, 0, 0}};
    h->all_dirs = statted;
    int rc = list_dir(w, fd, held_net_cb, &nl);
    if (rc && rc != ENOMEM)
        simple_problem(w, dev, FV_A_NET, FV_P_UNREADABLE, rc, 0, "net");
    if (rc == ENOMEM)
        w->oom = 1;
    if (rc) { /* not a listing to go by */
        fd_done(w, fd);
        free(nl.names.p);
        h->n_names = 0;
    } else {
        h->netfd = fd;
        h->names = (char *)nl.names.p;
        h->names_len = nl.names.len;
    }
    put_netdevs(w, dev);
}

static int raw_cb(walker *w, void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)type;
    if (sb_put(w, ctx, &w->dent_ino, sizeof w->dent_ino) < 0 || sb_put(w, ctx, name, len + 1) < 0)
        return ENOMEM;
    return 0;
}

static void *dup_mem(const void *src, size_t n)
{
    void *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, src, n);
    return d;
}

/* bus/pci/devices into r (addresses, inodes, n_listed) as list_bus and name_devices make them,
 * from what the prober kept when getdents64 gives the very bytes it gave last time. 0, or -1
 * with r->error (or w->oom) set. */
static int prober_listing(walker *w, fv_prober *p)
{
    fv_result *r = w->r;
    sbuf now = {NULL, 0, 0};
    int rc = list_dir(w, w->devfd, raw_cb, &now);
    if (rc || w->oom) {
        free(now.p);
        return listing_failed(w, rc);
    }
    if (p->n_listed >= 0 && now.len == p->seen_len &&
        (now.len == 0 || memcmp(now.p, p->seen, now.len) == 0)) {
        free(now.p);
        size_t n = (size_t)p->n_listed;
        r->addresses = dup_mem(p->addresses, p->addresses_len + 1);
        r->inodes = dup_mem(p->inodes, n * sizeof *r->inodes);
        if (!r->addresses || !r->inodes) {
            w->oom = 1;
            return -1;
        }
        r->addresses_len = (int64_t)p->addresses_len;
        r->n_listed = w->n = p->n_listed;
        return 0;
    }
    forget_listing(p);
    int32_t p0 = r->n_problems;
    keylist kl = {NULL, 0, 0};
    for (size_t pos = 0; pos < now.len;) {
        memcpy(&w->dent_ino, now.p + pos, sizeof w->dent_ino);
        const char *name = (const char *)now.p + pos + sizeof w->dent_ino;
        size_t len = strlen(name);
        pos += sizeof w->dent_ino + len + 1;
        if (listing_cb(w, &kl, name, len, DT_UNKNOWN)) {
            free(kl.keys);
            free(now.p);
            return -1; /* w->oom is set */
        }
    }
    if (bus_keys(w, &kl) || name_devices(w)) {
        free(now.p);
        return -1;
    }
    size_t n = (size_t)w->n;
    if (r->n_problems == p0 && !w->oom) { /* a listing with a problem is read afresh each time */
        p->addresses = dup_mem(r->addresses, (size_t)r->addresses_len + 1);
        p->inodes = dup_mem(r->inodes, n * sizeof *r->inodes);
        if (p->addresses && p->inodes) {
            p->seen = now.p;
            p->seen_len = now.len;
            p->addresses_len = (size_t)r->addresses_len;
            p->n_listed = w->n;
            return 0;
        }
        forget_listing(p);
    }
    free(now.p);
    return 0;
}

fv_result *fv_prober_run(fv_prober *p, int flags)
{
    walker w;
    memset(&w, 0, sizeof w);
    w.rootfd = w.devfd = -1;
    w.r = calloc(1, sizeof(fv_result));
    if (!w.r)
        return NULL;
    fv_result *r = w.r;
    w.c = &r->counters;
    r->n_listed = -1;
    r->class_net_off = r->class_net_len = -1;
    w.dents = malloc(DENTS_BUF);
    if (!w.dents) {
        r->error = FV_E_NOMEM;
        return finish(&w);
    }
    if (prober_root(&w, p))
        return finish(&w);
    w.eod_marker = p->eod_marker;
    w.n = (int32_t)p->n;
    w.keys = calloc(p->n ? p->n : 1, sizeof(uint64_t));
    r->probes = calloc(p->n ? p->n : 1, sizeof(fv_pf_probe));
    if (!w.keys || !r->probes || alloc_devices(&w)) {
        w.oom = 1;
        return finish(&w);
    }
    r->n_probes = (int32_t)p->n;
    for (size_t i = 0; i < p->n && !w.oom; i++) {
        held_pf *h = &p->pf[i];
        fv_pf_probe *pp = &r->probes[i];
        pp->first_off = pp->first_len = pp->last_off = pp->last_len = -1;
        if (h->fd < 0 && h->name[0])
            h->fd = c_openat(w.c, p->devfd, h->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_PATH);
        if (h->fd < 0) {
            pp->gone = 1;
            continue;
        }
        char link[32];
        if (h->count > 0) {
            probe_link(&w, h->fd, "virtfn0", &pp->first_off, &pp->first_len);
            snprintf(link, sizeof link, "virtfn%d", (int)(h->count - 1));
            if (h->count > 1)
                probe_link(&w, h->fd, link, &pp->last_off, &pp->last_len);
        }
        int32_t off, olen;
        snprintf(link, sizeof link, "virtfn%d", (int)h->count);
        pp->past_end = probe_link(&w, h->fd, link, &off, &olen);
        r->devices[i].flags |= FV_F_DETAILS;
        read_driver(&w, (int32_t)i, h->fd, "driver");
        held_net(&w, h, (int32_t)i);
    }
    fd_flush(&w);
    /* The listings last, so that what the PFs gave is the head of strings: a caller compares
     * probes by their bytes (up to class_net_off). Each is read from a directory opened for it:
     * a held one would have to be rewound. */
    if ((flags & FV_PROBE_LISTING) && !w.oom) {
        free(w.keys); /* the PFs' keys: the listing's replace them */
        w.keys = NULL;
        w.devfd = w_openat(&w, p->rootfd, "bus/pci/devices", OPEN_DIR);
        if (w.devfd < 0) {
            r->error = FV_E_NOT_SYSFS;
            r->error_errno = errno;
            return finish(&w);
        }
        if (prober_listing(&w, p))
            return finish(&w);
        int fd = w_openat(&w, p->rootfd, "class/net", OPEN_DIR);
        if (fd >= 0) {
            int rc = list_dir(&w, fd, snap_cb, NULL);
            fd_done(&w, fd);
            fd_flush(&w);
            if (rc == ENOMEM)
                w.oom = 1;
            else if (rc == 0)
                keep_snapshot(&w);
        }
    }
    return finish(&w);
}

void fv_free(fv_result *r)
{
    if (!r)
        return;
    free(r->devices);
    free(r->problems);
    free(r->addresses);
    free(r->strings);
    free(r->inodes);
    free(r->probes);
    free(r->columns);
    free(r->address_offsets);
    free(r->extra_rows);
    free(r);
}
