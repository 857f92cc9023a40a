"""C source of the HTTP/1.1 load generator for ``ztp bench service`` (compiled at bench time).

T threads, each with one keep-alive TCP connection to the server, send requests back to back
until COUNT requests have been sent in all. Each request is TEMPLATE (a printf format whose
``%1$s`` marks, possibly several, take the identity) filled with the next identity of IDFILE
(one per line, round robin). A reply is read to its end (headers + Content-Length body);
latency is wall time from the first byte written to the last byte read. A reply whose status
is not EXPECT counts as failed. Nothing else runs in the threads, so the client's own cost
stays small; its CPU time (getrusage) is printed so a saturated client is visible.

Usage: httpload HOST PORT IDFILE THREADS COUNT EXPECT TEMPLATE. Output: one line of JSON
(ok, fail, seconds, p50/p90/p99/max in ms, client CPU seconds).
"""

HTTPLOAD_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char **g_ids; static long g_n_ids; static const char *g_tpl; static int g_expect;
static struct sockaddr_in g_addr; static long g_count;
static long g_next; static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
typedef struct { long ok, fail; double *lat; long n; } worker_t;

static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
                          return ts.tv_sec + ts.tv_nsec / 1e9; }

static long take(void) { pthread_mutex_lock(&g_lock); long i = g_next < g_count ? g_next++ : -1;
                         pthread_mutex_unlock(&g_lock); return i; }

static int connect_one(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0); int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) != 0) { close(fd); return -1; }
    return fd;
}

/* One exchange on fd. Returns the HTTP status, or -1 on a connection error. */
static int exchange(int fd, const char *req, int len) {
    static __thread char buf[65536];
    for (int off = 0; off < len;) { ssize_t w = write(fd, req + off, len - off);
                                    if (w <= 0) return -1; off += w; }
    long have = 0, need = -1; char *hdr_end = NULL; int status = -1;
    for (;;) {
        if (have >= (long)sizeof buf - 1) return -1;
        ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
        if (r <= 0) return -1;
        have += r; buf[have] = 0;
        if (!hdr_end && (hdr_end = strstr(buf, "\r\n\r\n"))) {
            status = atoi(buf + 9);
            long clen = 0; char *p = buf;
            while ((p = strcasestr(p, "\r\ncontent-length:")) && p < hdr_end) {
                clen = atol(p + 17); break; }
            need = (hdr_end + 4 - buf) + clen;
        }
        if (hdr_end && have >= need) return status;
    }
}

static void *run(void *arg) {
    worker_t *w = arg; char req[4096]; int fd = connect_one();
    for (long i; (i = take()) >= 0;) {
        const char *id = g_ids[i % g_n_ids];
        int len = snprintf(req, sizeof req, g_tpl, id);
        double t0 = now();
        int st = fd >= 0 ? exchange(fd, req, len) : -1;
        if (st < 0) { if (fd >= 0) close(fd); fd = connect_one(); w->fail++; continue; }
        w->lat[w->n++] = (now() - t0) * 1e3;
        if (st == g_expect) w->ok++; else w->fail++;
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a,
    y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    if (argc != 8) { fprintf(stderr,
        "usage: %s HOST PORT IDFILE THREADS COUNT EXPECT TEMPLATE\n", argv[0]); return 2; }
    g_addr.sin_family = AF_INET; g_addr.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &g_addr.sin_addr);
    int threads = atoi(argv[4]); g_count = atol(argv[5]); g_expect = atoi(argv[6]);
    g_tpl = argv[7];
    FILE *f = fopen(argv[3], "r"); if (!f) { perror("idfile"); return 2; }
    char line[256]; long cap = 1024; g_ids = malloc(cap * sizeof *g_ids);
    while (fgets(line, sizeof line, f)) { line[strcspn(line, "\r\n")] = 0; if (!*line) continue;
        if (g_n_ids == cap) { cap *= 2; g_ids = realloc(g_ids, cap * sizeof *g_ids); }
        g_ids[g_n_ids++] = strdup(line); }
    fclose(f);
    if (!g_n_ids) { fprintf(stderr, "no identities\n"); return 2; }
    pthread_t *tid = calloc(threads, sizeof *tid); worker_t *w = calloc(threads, sizeof *w);
    for (int i = 0; i < threads; i++) w[i].lat = malloc(g_count * sizeof(double));
    double t0 = now();
    for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, run, &w[i]);
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    double secs = now() - t0;
    long ok = 0, fail = 0, n = 0;
    for (int i = 0; i < threads; i++) { ok += w[i].ok; fail += w[i].fail; n += w[i].n; }
    double *all = malloc((n ? n : 1) * sizeof(double)); long k = 0;
    for (int i = 0; i < threads; i++) for (long j = 0; j < w[i].n; j++) all[k++] = w[i].lat[j];
    qsort(all, n, sizeof(double), cmp);
    #define PCT(q) (n ? all[(long)((q) / 100.0 * (n - 1) + 0.5)] : 0.0)
    struct rusage ru; getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec
                 + ru.ru_stime.tv_usec / 1e6;
    printf("{\"ok\": %ld, \"fail\": %ld, \"seconds\": %.6f, \"p50_ms\": %.4f, "
           "\"p90_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f, \"client_cpu_s\": %.4f}\n",
           ok, fail, secs, PCT(50), PCT(90), PCT(99), n ? all[n - 1] : 0.0, cpu);
    return 0;
}
"""
