/*
 * A loopback TCP proxy that holds every chunk upstream sends for a fixed delay before passing
 * it on: "Redis DELAY_US microseconds away", for the load check (scripts/nonblocking_check.sh).
 * One thread, one epoll set, one FIFO of held chunks. The delay is the same for every chunk, so
 * the FIFO is in release order and one wakeup releases every chunk that is due. That keeps the
 * proxy's CPU small next to the server under test, which shares the machine's two cores with
 * it: spec/support/slow_proxy.lua (the same idea in a cqueues loop, for the specs) spends about
 * as much CPU per request under load as the server it delays.
 *
 *   delay_proxy PORT_FILE UPSTREAM_PORT DELAY_US
 * listens on 127.0.0.1 (a port the kernel picks), writes that port to PORT_FILE, and runs until
 * killed. Requests go upstream at once. The client closing closes both sides at once; upstream
 * closing does so once the chunks it sent before are passed on.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct pair;

struct end { /* what an epoll event points at: one side of a pair */
    struct pair *pair;
    int from_upstream;
};

struct pair {
    struct end client_end, upstream_end;
    int client, upstream;
    int closed;
    int held;           /* chunks of this pair in the FIFO */
    struct pair *grave; /* next closed pair waiting to be freed */
};

struct chunk { /* len 0: upstream closed here; close the pair when this is due */
    struct chunk *next;
    struct pair *pair;
    long long due_ns;
    size_t len;
    char data[];
};

static struct chunk *head, *tail;
/* Closed pairs are freed only between epoll batches (a batch may still name them) and once no
 * held chunk points at them. */
static struct pair *graves;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Writes all of buf to a nonblocking socket; 0 on success. Replies are small, so a full send
 * buffer is rare, and waiting for room here is simpler than queueing. MSG_NOSIGNAL: a peer
 * that closed (a server dropping a pooled connection) is an error here, not a SIGPIPE. */
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, 1000) <= 0) return -1;
        } else if (!(n < 0 && errno == EINTR)) {
            return -1;
        }
    }
    return 0;
}

static void close_pair(struct pair *p) {
    if (p->closed) return;
    p->closed = 1;
    close(p->client); /* closing takes the fds out of the epoll set */
    close(p->upstream);
    p->grave = graves;
    graves = p;
}

static void bury(void) {
    struct pair **at = &graves;
    while (*at) {
        struct pair *p = *at;
        if (p->held == 0) {
            *at = p->grave;
            free(p);
        } else {
            at = &p->grave;
        }
    }
}

static void accept_one(int listener, int ep, int upstream_port) {
    int client = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
    if (client < 0) return;
    int upstream = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((unsigned short)upstream_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct pair *p = calloc(1, sizeof *p);
    if (upstream < 0 || !p || connect(upstream, (struct sockaddr *)&to, sizeof to) < 0 ||
        fcntl(upstream, F_SETFL, O_NONBLOCK) < 0) {
        close(client);
        if (upstream >= 0) close(upstream);
        free(p);
        return;
    }
    int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    p->client = client;
    p->upstream = upstream;
    p->client_end.pair = p;
    p->upstream_end.pair = p;
    p->upstream_end.from_upstream = 1;
    struct epoll_event ce = {.events = EPOLLIN, .data.ptr = &p->client_end};
    struct epoll_event ue = {.events = EPOLLIN, .data.ptr = &p->upstream_end};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, client, &ce) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, upstream, &ue) < 0)
        close_pair(p);
}

static void readable(struct end *e, int ep, long long delay_ns) {
    static char buf[65536];
    struct pair *p = e->pair;
    if (p->closed) return;
    ssize_t n = read(e->from_upstream ? p->upstream : p->client, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0 || (n == 0 && !e->from_upstream)) {
        close_pair(p);
        return;
    }
    if (n == 0) /* upstream's EOF is held like its data: stop watching it, close when due */
        epoll_ctl(ep, EPOLL_CTL_DEL, p->upstream, NULL);
    if (!e->from_upstream) {
        if (write_all(p->upstream, buf, (size_t)n) < 0) close_pair(p);
        return;
    }
    struct chunk *c = malloc(sizeof *c + (size_t)n);
    if (!c) {
        close_pair(p);
        return;
    }
    c->next = NULL;
    c->pair = p;
    c->due_ns = now_ns() + delay_ns;
    c->len = (size_t)n;
    memcpy(c->data, buf, (size_t)n);
    p->held++;
    if (tail)
        tail->next = c;
    else
        head = c;
    tail = c;
}

/* Passes on every held chunk that is due; returns the wait until the next, or -1 for none. */
static long long release_due(void) {
    long long now = now_ns();
    while (head && head->due_ns <= now) {
        struct chunk *c = head;
        head = c->next;
        if (!head) tail = NULL;
        c->pair->held--;
        if (!c->pair->closed && (c->len == 0 || write_all(c->pair->client, c->data, c->len) < 0))
            close_pair(c->pair);
        free(c);
    }
    return head ? head->due_ns - now : -1;
}

/* epoll_pwait2 waits to the nanosecond; where the kernel or a seccomp filter refuses it
 * (before Linux 5.11), epoll_wait's whole milliseconds, rounded up, hold a chunk up to 1 ms
 * longer. Asked once, before the port is announced. */
static int precise = 1;

static int wait_for(int ep, struct epoll_event *events, int max, long long wait_ns) {
    if (precise) {
        struct timespec t = {.tv_sec = wait_ns / 1000000000LL, .tv_nsec = wait_ns % 1000000000LL};
        return epoll_pwait2(ep, events, max, wait_ns < 0 ? NULL : &t, NULL);
    }
    return epoll_wait(ep, events, max, wait_ns < 0 ? -1 : (int)((wait_ns + 999999) / 1000000));
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: delay_proxy PORT_FILE UPSTREAM_PORT DELAY_US\n");
        return 2;
    }
    int upstream_port = atoi(argv[2]);
    long long delay_ns = atoll(argv[3]) * 1000LL;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in at = {.sin_family = AF_INET};
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof at;
    if (listener < 0 || bind(listener, (struct sockaddr *)&at, sizeof at) < 0 || listen(listener, 512) < 0 ||
        getsockname(listener, (struct sockaddr *)&at, &len) < 0) {
        perror("delay_proxy: listen on 127.0.0.1");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listener, &le) < 0) {
        perror("delay_proxy: epoll");
        return 1;
    }
    struct epoll_event probe;
    struct timespec zero = {0, 0};
    if (epoll_pwait2(ep, &probe, 1, &zero, NULL) < 0) {
        precise = 0;
        fprintf(stderr, "delay_proxy: epoll_pwait2 refused (%s): waits in whole milliseconds\n", strerror(errno));
    }
    FILE *f = fopen(argv[1], "w");
    if (!f || fprintf(f, "%d", ntohs(at.sin_port)) < 0 || fclose(f) != 0) {
        perror("delay_proxy: write the port file");
        return 1;
    }
    struct epoll_event events[64];
    for (;;) {
        long long wait_ns = release_due();
        int n = wait_for(ep, events, 64, wait_ns);
        if (n < 0 && errno != EINTR) {
            perror("delay_proxy: epoll wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                accept_one(listener, ep, upstream_port);
            else
                readable(events[i].data.ptr, ep, delay_ns);
        }
        bury();
    }
}
