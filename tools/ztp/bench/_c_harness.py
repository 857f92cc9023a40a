"""The C skeleton both load generators of ``ztp bench gateway`` share (``_c_loadgen`` on
OpenSSL, ``_c_gnutls`` on GnuTLS): the identity file, the worker threads running exchanges
back to back until the deadline, and the JSON report with the generator's own CPU time. Each
client supplies only its TLS: ``exchange(worker_t *, entry_t *)`` and its setup in ``main``.

    source = c_source(includes, entry_extra, client_code, main_setup)

``client_code`` defines ``exchange`` (and anything it needs); ``main_setup`` runs in ``main``
after the identities are loaded (entries in ``g_entries[0..g_n_entries)``) and returns 2 on
failure. Command line: HOST PORT IDFILE THREADS SECONDS.
"""

from __future__ import annotations

_HEAD = r"""
#define _GNU_SOURCE
@INCLUDES@
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct { unsigned char id[256]; size_t idlen; unsigned char psk[64]; size_t psklen;
                 char iccid[128]; @ENTRY_EXTRA@ } entry_t;
typedef struct { long ok, fail, dhe, status_bad; double *lat; long cap; long next; } worker_t;

static entry_t *g_entries; static long g_n_entries;
static struct sockaddr_in g_addr; static double g_deadline;
static long g_counter; static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
                          return ts.tv_sec + ts.tv_nsec / 1e9; }

static size_t unhex(const char *s, unsigned char *out, size_t max) {
    size_t n = 0;
    while (s[0] && s[1] && n < max) { unsigned v; sscanf(s, "%2x", &v); out[n++] = v; s += 2; }
    return n;
}
"""

_TAIL = r"""
static void *run(void *arg) {
    worker_t *w = arg;
    while (now() < g_deadline) {
        pthread_mutex_lock(&g_lock);
        entry_t *e = &g_entries[g_counter++ % g_n_entries];
        pthread_mutex_unlock(&g_lock);
        double t0 = now();
        if (exchange(w, e)) {
            if (w->next == w->cap) { w->cap = w->cap ? 2 * w->cap : 4096;
                                     w->lat = realloc(w->lat, w->cap * sizeof(double)); }
            w->lat[w->next++] = now() - t0;
            w->ok++;
        } else w->fail++;
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y);
}

static int load_entries(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); return 2; }
    char idh[520], pskh[140], icc[128];
    long cap = 1024;
    g_entries = calloc(cap, sizeof(entry_t));
    while (fscanf(f, "%519s %139s %127s", idh, pskh, icc) == 3) {
        if (g_n_entries == cap) {
            cap *= 2;
            g_entries = realloc(g_entries, cap * sizeof(entry_t));
            memset(g_entries + g_n_entries, 0, (cap - g_n_entries) * sizeof(entry_t));
        }
        entry_t *e = &g_entries[g_n_entries++];
        e->idlen = unhex(idh, e->id, sizeof e->id);
        e->psklen = unhex(pskh, e->psk, sizeof e->psk);
        snprintf(e->iccid, sizeof e->iccid, "%s", icc);
    }
    fclose(f);
    if (!g_n_entries) { fprintf(stderr, "no identities\n"); return 2; }
    return 0;
}

static int setup(void);

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT IDFILE THREADS SECONDS\n", argv[0]);
        return 2;
    }
    if (load_entries(argv[3]) || setup()) return 2;
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &g_addr.sin_addr);
    int threads = atoi(argv[4]);
    double seconds = atof(argv[5]);
    worker_t *ws = calloc(threads, sizeof(worker_t));
    pthread_t *ts = calloc(threads, sizeof(pthread_t));
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now();
    g_deadline = t0 + seconds;
    for (int i = 0; i < threads; i++) pthread_create(&ts[i], NULL, run, &ws[i]);
    for (int i = 0; i < threads; i++) pthread_join(ts[i], NULL);
    double wall = now() - t0;
    getrusage(RUSAGE_SELF, &r1);
    long ok = 0, fail = 0, dhe = 0, bad = 0, n = 0;
    for (int i = 0; i < threads; i++) { ok += ws[i].ok; fail += ws[i].fail; dhe += ws[i].dhe;
                                        bad += ws[i].status_bad; }
    double *all = malloc((ok ? ok : 1) * sizeof(double));
    for (int i = 0; i < threads; i++) { memcpy(all + n, ws[i].lat, ws[i].next * sizeof(double));
                                        n += ws[i].next; }
    qsort(all, n, sizeof(double), cmp);
    #define TV(t) ((t).tv_sec + (t).tv_usec / 1e6)
    double usr = TV(r1.ru_utime) - TV(r0.ru_utime);
    double cpu = usr + TV(r1.ru_stime) - TV(r0.ru_stime);
    #define PCT(q) (n ? all[(long)((q) / 100.0 * (n - 1) + 0.5)] : 0.0)
    printf("{\"ok\": %ld, \"fail\": %ld, \"dhe\": %ld, \"status_not_200\": %ld, "
           "\"wall_s\": %.6f, \"cpu_s\": %.6f, \"user_s\": %.6f, "
           "\"p50_s\": %.6f, \"p99_s\": %.6f, \"max_s\": %.6f}\n",
           ok, fail, dhe, bad, wall, cpu, usr, PCT(50), PCT(99), n ? all[n - 1] : 0.0);
    return 0;
}
"""


def c_source(includes: str, entry_extra: str, client_code: str, setup_body: str) -> str:
    """A whole load generator: the shared skeleton around one client's TLS code.
    ``setup_body`` is the body of ``static int setup(void)`` (0 = ready, 2 = failed)."""
    head = _HEAD.replace("@INCLUDES@", includes).replace("@ENTRY_EXTRA@", entry_extra)
    return (head + client_code + _TAIL
            + "\nstatic int setup(void) {\n" + setup_body + "\n}\n")
