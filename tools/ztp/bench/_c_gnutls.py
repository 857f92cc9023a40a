"""C source of the GnuTLS load generator for ``ztp bench gateway`` (compiled at bench time).

The second, independent client stack (issue 14): the same exchanges, file format, output and
command line as the OpenSSL one in ``_c_loadgen``, built on GnuTLS (libgnutls28-dev), so a
server that one client library handles badly shows up as two clients disagreeing.

One exchange = TCP connect + TLS 1.3 external-PSK handshake (priority string: TLS 1.3,
TLS_AES_128_CCM_SHA256, key exchange PSK only, i.e. psk_ke without a key_share, as a SIM
sends) + one HTTP GET + read the reply until the server closes + close (no close_notify sent,
as the OpenSSL client). Identities are raw bytes (gnutls_psk_set_client_credentials2), one
credential per identity made before the clock starts. An exchange whose negotiated key
exchange is not plain PSK is counted in ``dhe`` (must be 0).

Usage: loadgen-gnutls HOST PORT IDFILE THREADS SECONDS. Output: one line of JSON, including
the generator's own CPU time (getrusage).
"""

GNUTLS_LOADGEN_C = r"""
#define _GNU_SOURCE
#include <gnutls/gnutls.h>
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
                 char iccid[128]; gnutls_psk_client_credentials_t cred; } entry_t;
typedef struct { long ok, fail, dhe, status_bad; double *lat; long cap; long next; } worker_t;

static entry_t *g_entries; static long g_n_entries;
static gnutls_priority_t g_prio; static struct sockaddr_in g_addr; static double g_deadline;
static long g_counter; static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
                          return ts.tv_sec + ts.tv_nsec / 1e9; }

static size_t unhex(const char *s, unsigned char *out, size_t max) {
    size_t n = 0;
    while (s[0] && s[1] && n < max) { unsigned v; sscanf(s, "%2x", &v); out[n++] = v; s += 2; }
    return n;
}

static int exchange(worker_t *w, entry_t *e) {
    char req[512], buf[4096];
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, ok = 0, r;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) != 0) { close(fd); return 0; }
    gnutls_session_t s;
    if (gnutls_init(&s, GNUTLS_CLIENT) < 0) { close(fd); return 0; }
    gnutls_priority_set(s, g_prio);
    gnutls_credentials_set(s, GNUTLS_CRD_PSK, e->cred);
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, "gw.example", 10);
    gnutls_transport_set_int(s, fd);
    do { r = gnutls_handshake(s); } while (r < 0 && !gnutls_error_is_fatal(r));
    if (r == 0) {
        gnutls_kx_algorithm_t kx = gnutls_kx_get(s);
        if (kx != GNUTLS_KX_PSK) w->dhe++;
        int n = snprintf(req, sizeof req,
            "GET /v1/config/000102030405060708090a0b0c0d0e0f?iccid=%s HTTP/1.1\r\n"
            "Host: gw.example\r\nConnection: close\r\n\r\n", e->iccid);
        if (gnutls_record_send(s, req, n) == n) {
            long got = 0;
            for (;;) {
                r = gnutls_record_recv(s, buf + (got < 64 ? got : 64),
                                       sizeof buf - (got < 64 ? got : 64));
                if (r > 0) got += r;
                else if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) continue;
                else break;   /* 0: close_notify; <0: EOF without it or an error */
            }
            if (got > 12) {
                ok = 1;
                if (memcmp(buf, "HTTP/1.", 7) != 0 || memcmp(buf + 8, " 200", 4) != 0)
                    w->status_bad++;
            }
        }
    }
    gnutls_deinit(s);
    close(fd);
    return ok;
}

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

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT IDFILE THREADS SECONDS\n", argv[0]);
        return 2;
    }
    gnutls_global_init();
    FILE *f = fopen(argv[3], "r");
    if (!f) { perror(argv[3]); return 2; }
    char idh[520], pskh[140], icc[128];
    long cap = 1024;
    g_entries = calloc(cap, sizeof(entry_t));
    while (fscanf(f, "%519s %139s %127s", idh, pskh, icc) == 3) {
        if (g_n_entries == cap) { cap *= 2; g_entries = realloc(g_entries, cap * sizeof(entry_t)); }
        entry_t *e = &g_entries[g_n_entries++];
        e->idlen = unhex(idh, e->id, sizeof e->id);
        e->psklen = unhex(pskh, e->psk, sizeof e->psk);
        snprintf(e->iccid, sizeof e->iccid, "%s", icc);
    }
    fclose(f);
    if (!g_n_entries) { fprintf(stderr, "no identities\n"); return 2; }
    for (long i = 0; i < g_n_entries; i++) {
        entry_t *e = &g_entries[i];
        gnutls_datum_t user = {e->id, (unsigned)e->idlen}, key = {e->psk, (unsigned)e->psklen};
        if (gnutls_psk_allocate_client_credentials(&e->cred) < 0
            || gnutls_psk_set_client_credentials2(e->cred, &user, &key, GNUTLS_PSK_KEY_RAW) < 0) {
            fprintf(stderr, "cannot set PSK credentials\n"); return 2;
        }
    }
    const char *err;
    if (gnutls_priority_init(&g_prio,
            "NONE:+VERS-TLS1.3:+AES-128-CCM:+AEAD:+SHA256:+PSK:+GROUP-X25519:+SIGN-ALL:+CTYPE-ALL",
            &err) < 0) { fprintf(stderr, "bad priority at %s\n", err); return 2; }
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
