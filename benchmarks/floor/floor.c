/* The floor of a sysfs scan: only the system calls that Nova's device dicts cannot do without.
 *
 * What is read is what fastvpd.scan reads to produce Inventory.to_nova() on a DPU host
 * (docs/sysfs.md): the listing of bus/pci/devices; for every function that is not a VF of a PF
 * already read, its vendor, device, class, numa_node, sriov_totalvfs, sriov_offset,
 * sriov_stride, sriov_vf_device, vpd, its driver link, its net/ listing and the address of its
 * first netdev; how many virtfn<N> links each PF has; and which VFs own a netdev (Nova gives
 * those a parent_ifname), from one listing of class/net and one readlinkat per netdev. The VFs'
 * addresses follow from the PF's layout (VF RID = PF RID + offset + N * stride); their
 * directories are never opened.
 *
 * The virtfn links are counted in one of two ways (floor_scan's `probe`):
 *   0  list the PF's directory (getdents64) and count the virtfn* names;
 *   1  probe readlinkat("virtfn<N>"): N = 1, 2, 4, ... until one is missing, then bisect
 *      (about 21 calls for 1024 VFs, and no listing of the PF at all).
 *
 * Nothing is verified beyond that: this is a lower bound, not a scanner. The fds of a function
 * are closed in one close_range. Buffers are static and reused from call to call. The result is
 * what a builder of Nova's dicts needs: the rows in address order (kind, PF, VF number, netdev),
 * every address in one text, and one line of facts per PF or plain function.
 *
 * Built by benchmarks/floor/__init__.py (cc -O2 -shared) and called through ctypes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DENTS_CAP (8 << 20) /* big enough for any listing here in one or two calls */
#define MAX_DOMAINS 8
#define KEYS_PER_DOMAIN 65536
#define MAX_FUNCS 4096      /* functions that are read (PFs and plain ones) */
#define ATTR_CAP 4096
#define VPD_CAP 32768

enum { C_OPENAT, C_READ, C_GETDENTS, C_READLINKAT, C_CLOSE, C_N };
static long cnt[C_N];

static unsigned char dents[DENTS_CAP];
static unsigned char vpdbuf[VPD_CAP];
static uint32_t domains[MAX_DOMAINS];
static int ndomains;
static uint8_t listed[MAX_DOMAINS * KEYS_PER_DOMAIN];  /* 1: in bus/pci/devices */
static uint8_t netdev[MAX_DOMAINS * KEYS_PER_DOMAIN];  /* class/net names a netdev of it */
static int32_t owner[MAX_DOMAINS * KEYS_PER_DOMAIN];   /* PF (function index) of a VF, else -1 */
static int32_t vfnum[MAX_DOMAINS * KEYS_PER_DOMAIN];

/* The result, read back by the caller through floor_result(). */
static char facts[MAX_FUNCS * 256];
static size_t facts_len;
static char addrs[MAX_DOMAINS * KEYS_PER_DOMAIN * 17];
static size_t addrs_len;
/* per row: function index (-1 for a VF), its PF, its vf_num, whether it owns a netdev */
static int32_t rows[MAX_DOMAINS * KEYS_PER_DOMAIN * 4];
static int32_t nrows;
static int32_t nfuncs;
static int32_t func_key[MAX_FUNCS];

/* The fds of the function being read, closed together by fds_close(). */
static int fds[64];
static int nfds;

static int x_openat(int dfd, const char *p, int flags)
{
    cnt[C_OPENAT]++;
    int fd = openat(dfd, p, flags);
    if (fd >= 0 && nfds < 64) fds[nfds++] = fd;
    return fd;
}

/* One close_range per run of consecutive fds (normally one: each open takes the lowest free fd),
 * so never an fd this code did not open. */
static void fds_close(void)
{
    for (int i = 1; i < nfds; i++)
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    for (int i = 0; i < nfds;) {
        int j = i + 1;
        while (j < nfds && fds[j] == fds[j - 1] + 1) j++;
        cnt[C_CLOSE]++;
        if (syscall(SYS_close_range, fds[i], fds[j - 1], 0) != 0)
            for (int k = i; k < j; k++) close(fds[k]);
        i = j;
    }
    nfds = 0;
}
static ssize_t x_read(int fd, void *b, size_t n) { cnt[C_READ]++; return read(fd, b, n); }
static long x_getdents(int fd, void *b, size_t n)
{
    cnt[C_GETDENTS]++;
    return syscall(SYS_getdents64, fd, b, n);
}

static ssize_t x_readlinkat(int dfd, const char *p, char *b, size_t n)
{
    cnt[C_READLINKAT]++;
    return readlinkat(dfd, p, b, n);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "DDDD:BB:SS.F" -> domain index << 16 | routing ID, or -1. */
static long parse_addr(const char *s, size_t len, int add_domain)
{
    if (len < 12 || len > 16 || s[len - 8] != ':' || s[len - 5] != ':' || s[len - 2] != '.')
        return -1;
    uint32_t dom = 0;
    for (size_t i = 0; i < len - 8; i++) {
        int v = hexval(s[i]);
        if (v < 0) return -1;
        dom = dom << 4 | (uint32_t)v;
    }
    int b1 = hexval(s[len - 7]), b0 = hexval(s[len - 6]), s1 = hexval(s[len - 4]),
        s0 = hexval(s[len - 3]), f = s[len - 1] - '0';
    if (b1 < 0 || b0 < 0 || s1 < 0 || s0 < 0 || f < 0 || f > 7 || (s1 << 4 | s0) > 0x1f)
        return -1;
    int d = 0; /* domains are indexed in the order first seen (see order[]) */
    while (d < ndomains && domains[d] != dom) d++;
    if (d == ndomains) {
        if (!add_domain || ndomains == MAX_DOMAINS) return -1;
        domains[ndomains++] = dom;
    }
    return (long)d << 16 | (b1 << 12 | b0 << 8 | (s1 << 4 | s0) << 3 | f);
}

static size_t fmt_addr(long key, char *out)
{
    static const char hx[] = "0123456789abcdef";
    int n = sprintf(out, "%04x", domains[key >> 16]);
    unsigned rid = (unsigned)key & 0xffff, bus = rid >> 8, slot = (rid >> 3) & 0x1f;
    out[n++] = ':';
    out[n++] = hx[bus >> 4];
    out[n++] = hx[bus & 15];
    out[n++] = ':';
    out[n++] = hx[slot >> 4];
    out[n++] = hx[slot & 15];
    out[n++] = '.';
    out[n++] = (char)('0' + (rid & 7));
    out[n] = 0;
    return (size_t)n;
}

/* Read a small file below dfd into buf (NUL-terminated, newline cut); its length or -1. */
static int read_attr(int dfd, const char *name, char *buf, size_t cap)
{
    int fd = x_openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    ssize_t n = x_read(fd, buf, cap - 1);
    if (n < 0) return -1;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) n--;
    buf[n] = 0;
    return (int)n;
}

static long num_attr(int dfd, const char *name, int base)
{
    char b[64];
    if (read_attr(dfd, name, b, sizeof b) <= 0) return -1;
    char *end;
    long v = strtol(b, &end, base);
    return *end ? -1 : v;
}

/* The text of an ID file without its "0x": "15b3". */
static void id_attr(int dfd, const char *name, char *out, size_t cap)
{
    char b[64];
    int n = read_attr(dfd, name, b, sizeof b);
    const char *s = (n > 2 && b[0] == '0' && b[1] == 'x') ? b + 2 : (n > 0 ? b : "-");
    snprintf(out, cap, "%s", s);
}

/* The SN keyword of a VPD image's read-only section ("-" without one). */
static void vpd_serial(int dfd, char *out, size_t cap)
{
    snprintf(out, cap, "-");
    int fd = x_openat(dfd, "vpd", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return;
    ssize_t n = x_read(fd, vpdbuf, sizeof vpdbuf);
    size_t pos = 0;
    while (n > 0 && pos + 3 <= (size_t)n) {
        unsigned tag = vpdbuf[pos];
        if (!(tag & 0x80)) /* small resource: the end tag (0x78) or nothing we need */
            return;
        size_t len = vpdbuf[pos + 1] | (size_t)vpdbuf[pos + 2] << 8, at = pos + 3;
        if (at + len > (size_t)n) return;
        if (tag == 0x90) { /* VPD-R: keyword, length, data */
            for (size_t k = at; k + 3 <= at + len;) {
                size_t fl = vpdbuf[k + 2];
                if (vpdbuf[k] == 'S' && vpdbuf[k + 1] == 'N' && k + 3 + fl <= at + len) {
                    snprintf(out, cap, "%.*s", (int)fl, (const char *)vpdbuf + k + 3);
                    return;
                }
                k += 3 + fl;
            }
        }
        pos = at + len;
    }
}

typedef int (*dent_fn)(void *ctx, const char *name, size_t len, unsigned char type);

/* getdents64 until the end; on tmpfs and sysfs the last entry's d_off marks the end, which
 * saves the call that would return 0 (as fastvpd's list_dir). */
static int list(int fd, dent_fn cb, void *ctx)
{
    for (;;) {
        long n = x_getdents(fd, dents, sizeof dents);
        if (n <= 0) return n < 0 ? -1 : 0;
        int64_t off = 0;
        for (long pos = 0; pos < n;) {
            unsigned short reclen;
            memcpy(&reclen, dents + pos + 16, 2);
            memcpy(&off, dents + pos + 8, 8);
            const char *name = (const char *)dents + pos + 19;
            if (name[0] != '.' && cb(ctx, name, strlen(name), dents[pos + 18])) return -1;
            pos += reclen;
        }
        if (off == INT32_MAX || off == INT64_MAX) return 0;
    }
}

static int listing_cb(void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)ctx;
    (void)type;
    long key = parse_addr(name, len, 1);
    if (key >= 0) listed[key] = 1;
    return 0;
}

/* class/net/<if> -> ../../devices/.../<addr>/net/<if>: mark <addr> as owning a netdev. */
static int net_cb(void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)type;
    char t[4096];
    ssize_t n = x_readlinkat(*(int *)ctx, name, t, sizeof t);
    if (n <= (ssize_t)(len + 5 + 12)) return 0;
    const char *tail = t + n - len - 5; /* "/net/<if>" */
    if (memcmp(tail, "/net/", 5) != 0) return 0;
    const char *a = tail;
    while (a > t && a[-1] != '/') a--;
    long key = parse_addr(a, (size_t)(tail - a), 0);
    if (key >= 0) netdev[key] = 1;
    return 0;
}

typedef struct {
    int nvirtfn;
    char ifname[256];
} pfscan;

static int pf_cb(void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)type;
    if (len > 6 && memcmp(name, "virtfn", 6) == 0) ((pfscan *)ctx)->nvirtfn++;
    return 0;
}

static int first_name_cb(void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)type;
    char *best = ctx;
    if (!best[0] || strcmp(name, best) < 0) snprintf(best, 256, "%.*s", (int)len, name);
    return 0;
}

static int has_virtfn(int dfd, long n)
{
    char name[32], t[64];
    snprintf(name, sizeof name, "virtfn%ld", n);
    return x_readlinkat(dfd, name, t, sizeof t) >= 0;
}

/* How many virtfn<N> links: gallop up to the first missing N, then bisect. */
static long probe_virtfns(int dfd)
{
    if (!has_virtfn(dfd, 0)) return 0;
    long lo = 0, hi = 1; /* virtfn<lo> exists */
    while (has_virtfn(dfd, hi)) {
        lo = hi;
        hi *= 2;
    }
    while (hi - lo > 1) { /* lo exists, hi does not */
        long mid = lo + (hi - lo) / 2;
        if (has_virtfn(dfd, mid)) lo = mid;
        else hi = mid;
    }
    return hi;
}

/* One function that is not a VF of a PF read before it. */
static void read_function(int devfd, long key, int probe)
{
    char name[24], vendor[16], device[16], klass[16], vfdev[16], serial[256], driver[256];
    char mac[64], path[600];
    fmt_addr(key, name);
    int dfd = x_openat(devfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    pfscan ps = {0, ""};
    if (!probe) list(dfd, pf_cb, &ps);
    id_attr(dfd, "vendor", vendor, sizeof vendor);
    id_attr(dfd, "device", device, sizeof device);
    id_attr(dfd, "class", klass, sizeof klass);
    long numa = num_attr(dfd, "numa_node", 10);
    long total = num_attr(dfd, "sriov_totalvfs", 10), offset = -1, stride = -1;
    vfdev[0] = 0;
    if (total >= 0) {
        offset = num_attr(dfd, "sriov_offset", 10);
        stride = num_attr(dfd, "sriov_stride", 10);
        char b[16];
        if (read_attr(dfd, "sriov_vf_device", b, sizeof b) > 0)
            snprintf(vfdev, sizeof vfdev, "%s", b);
    }
    ssize_t dl = x_readlinkat(dfd, "driver", path, sizeof path - 1);
    const char *drv = "-";
    if (dl > 0) {
        path[dl] = 0;
        drv = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    }
    snprintf(driver, sizeof driver, "%s", drv);
    int nfd = x_openat(dfd, "net", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(mac, sizeof mac, "-");
    if (nfd >= 0) {
        list(nfd, first_name_cb, ps.ifname);
        if (ps.ifname[0]) {
            snprintf(path, sizeof path, "%s/address", ps.ifname);
            if (read_attr(nfd, path, mac, sizeof mac) <= 0) snprintf(mac, sizeof mac, "-");
        }
    }
    vpd_serial(dfd, serial, sizeof serial);
    long count = 0;
    if (total > 0) count = probe ? probe_virtfns(dfd) : ps.nvirtfn;
    int32_t f = nfuncs++;
    func_key[f] = (int32_t)key;
    /* index kind address vendor device class numa vf_device count driver ifname mac serial */
    char a[24];
    fmt_addr(key, a);
    facts_len += (size_t)snprintf(facts + facts_len, sizeof facts - facts_len,
                                  "%d %s %s %s %s %s %ld %s %ld %s %s %s %s\n", f,
                                  total > 0 ? "PF" : "PCI", a, vendor, device, klass, numa,
                                  vfdev[0] ? vfdev : "-", count, driver,
                                  ps.ifname[0] ? ps.ifname : "-", mac, serial);
    if (count > 0 && offset > 0 && stride > 0) {
        long base = (key & 0xffff) + offset, dom = key & ~0xffffL;
        for (long v = 0; v < count && base + v * stride <= 0xffff; v++) {
            long k = dom | (base + v * stride);
            if (listed[k]) {
                owner[k] = f;
                vfnum[k] = (int32_t)v;
            }
        }
    }
    fds_close();
}

static int count_cb(void *ctx, const char *name, size_t len, unsigned char type)
{
    (void)name; (void)len; (void)type;
    ++*(long *)ctx;
    return 0;
}

/* Only list <root>/bus/pci/devices: what any refresh that re-lists the devices pays (the
 * Scanner's refresh(changed=None)). Returns the number of entries, -1 on error. */
long floor_list_bus(const char *root, long *counters)
{
    memset(cnt, 0, sizeof cnt);
    nfds = 0;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/bus/pci/devices", root) >= (int)sizeof path)
        return -1;
    int fd = x_openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long n = 0;
    int rc = list(fd, count_cb, &n);
    fds_close();
    for (int i = 0; i < C_N; i++) counters[i] = cnt[i];
    return rc < 0 ? -1 : n;
}

/* Scan the tree at root. Returns the number of rows (functions reported), -1 on error.
 * counters[5] gets openat, read, getdents64, readlinkat, close/close_range. */
long floor_scan(const char *root, int probe, long *counters)
{
    memset(cnt, 0, sizeof cnt);
    nfds = 0;
    ndomains = 0;
    nfuncs = 0;
    facts_len = addrs_len = 0;
    nrows = 0;
    memset(listed, 0, sizeof listed);
    memset(netdev, 0, sizeof netdev);
    int rootfd = x_openat(AT_FDCWD, root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_PATH);
    if (rootfd < 0) return -1;
    int devfd = x_openat(rootfd, "bus/pci/devices", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (devfd < 0) return -1;
    list(devfd, listing_cb, NULL);
    int netfd = x_openat(rootfd, "class/net", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (netfd >= 0) list(netfd, net_cb, &netfd);
    nfds = 0; /* the three fds above stay open to the end */
    long nkeys = (long)ndomains * KEYS_PER_DOMAIN;
    int order[MAX_DOMAINS]; /* domain indexes in address order */
    for (int i = 0; i < ndomains; i++) {
        int j = i;
        for (; j > 0 && domains[order[j - 1]] > domains[i]; j--) order[j] = order[j - 1];
        order[j] = i;
    }
    for (long k = 0; k < nkeys; k++) owner[k] = -1;
    for (int d = 0; d < ndomains; d++)
        for (long k = (long)order[d] << 16, end = k + KEYS_PER_DOMAIN; k < end; k++)
            if (listed[k] && owner[k] < 0 && nfuncs < MAX_FUNCS) {
                owner[k] = -2; /* read: not a VF of a PF before it */
                read_function(devfd, k, probe);
            }
    int32_t f = 0;
    for (long i = 0; i < nkeys; i++) {
        long k = (long)order[i >> 16] << 16 | (i & 0xffff);
        if (!listed[k]) continue;
        int32_t *r = rows + 4 * nrows++;
        if (owner[k] == -2) {
            r[0] = f++;
            r[1] = r[2] = -1;
        } else {
            r[0] = -1;
            r[1] = owner[k];
            r[2] = vfnum[k];
        }
        r[3] = netdev[k];
        addrs_len += fmt_addr(k, addrs + addrs_len);
        addrs[addrs_len++] = '\n';
    }
    close(netfd);
    close(devfd);
    close(rootfd);
    cnt[C_CLOSE] += 3;
    for (int i = 0; i < C_N; i++) counters[i] = cnt[i];
    return nrows;
}

/* What the last floor_scan found: its facts text, address text and rows (4 int32 per row). */
void floor_result(const char **facts_out, size_t *facts_n, const char **addrs_out, size_t *addrs_n,
                  const int32_t **rows_out)
{
    *facts_out = facts;
    *facts_n = facts_len;
    *addrs_out = addrs;
    *addrs_n = addrs_len;
    *rows_out = rows;
}
