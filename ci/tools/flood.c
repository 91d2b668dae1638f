/*
 * flood: a bounded spoofed-source SYN or UDP flood for the rvs e2e tests
 * (ci/e2e/test_flood.py). Python raw sockets reach a few kpps; this reaches
 * what the veth gives (a few 100 kpps).
 *
 *   flood --iface IF --src-mac MAC --dst-mac MAC --dst IP --dport PORT
 *         --proto tcp|udp --src-net A.B.C.D/LEN --count N --max-time SECS
 *         [--pps RATE] [--seed K] [--batch B]
 *
 * Sends at most N frames and stops after SECS seconds, whichever comes first,
 * on a raw AF_PACKET socket bound to IF (sendmmsg, qdisc bypass). Each frame
 * is a TCP SYN (no options) or a UDP datagram (16 bytes of payload) from a
 * pseudo-random (keyed by --seed: the same seed gives the same frames)
 * source address inside --src-net (never its first or last address) and
 * source port 1024..65535, to DST:DPORT, with correct IPv4, TCP and UDP
 * checksums (rvs verifies the L4 checksum of a packet that would create
 * state). --pps caps the rate (0, the default: as fast as the socket takes).
 *
 * Prints one JSON line: {"sent":..,"seconds":..,"pps":..,"send_errors":..}.
 * Exit 0 on success, 2 on bad arguments, 1 on a socket error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define FRAME_MAX 128

static uint64_t rng_state;

/* splitmix64: keyed, fast, good enough to spread sources over the table. */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_mac(const char *s, uint8_t *m)
{
	unsigned v[6];
	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -1;
		m[i] = (uint8_t)v[i];
	}
	return 0;
}

/* One's complement sum of 16-bit big-endian words. */
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xFFFF) + (acc >> 16);
	return (uint16_t)~acc;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xFF;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xFFFF);
}

struct opts {
	const char *iface;
	uint8_t src_mac[6], dst_mac[6];
	uint32_t dst;      /* host order */
	uint16_t dport;
	int udp;
	uint32_t net, mask; /* host order */
	long count;
	double max_time, pps;
	uint64_t seed;
	int batch;
};

/* Writes one frame into f; returns its length. */
static size_t build(const struct opts *o, uint8_t *f)
{
	uint32_t host = ~o->mask;
	uint32_t src;
	do {
		src = o->net | ((uint32_t)rnd() & host);
	} while (host > 1 && ((src & host) == 0 || (src & host) == host));
	uint16_t sport = 1024 + (uint16_t)(rnd() % (65536 - 1024));
	size_t l4len = o->udp ? 8 + 16 : 20;
	size_t iplen = 20 + l4len;

	memcpy(f, o->dst_mac, 6);
	memcpy(f + 6, o->src_mac, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)iplen);
	put16(ip + 4, (uint16_t)rnd());
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = o->udp ? 17 : 6;
	put16(ip + 10, 0);
	put32(ip + 12, src);
	put32(ip + 16, o->dst);
	put16(ip + 10, fold(sum16(ip, 20, 0)));

	uint8_t *l4 = ip + 20;
	put16(l4, sport);
	put16(l4 + 2, o->dport);
	if (o->udp) {
		put16(l4 + 4, (uint16_t)l4len);
		put16(l4 + 6, 0);
		for (int i = 0; i < 16; i++)
			l4[8 + i] = (uint8_t)rnd();
	} else {
		put32(l4 + 4, (uint32_t)rnd()); /* seq */
		put32(l4 + 8, 0);               /* ack */
		l4[12] = 5 << 4;                /* data offset 5, no options */
		l4[13] = 0x02;                  /* SYN */
		put16(l4 + 14, 64240);          /* window */
		put16(l4 + 16, 0);              /* checksum */
		put16(l4 + 18, 0);              /* urgent */
	}
	/* pseudo header: src, dst, zero+proto, L4 length */
	uint32_t acc = sum16(ip + 12, 8, 0) + ip[9] + (uint32_t)l4len;
	uint16_t c = fold(sum16(l4, l4len, acc));
	if (o->udp && c == 0)
		c = 0xFFFF;
	put16(l4 + (o->udp ? 6 : 16), c);
	return 14 + iplen;
}

static void usage(void)
{
	fprintf(stderr, "usage: flood --iface IF --src-mac MAC --dst-mac MAC --dst IP --dport PORT "
			"--proto tcp|udp --src-net A.B.C.D/LEN --count N --max-time SECS "
			"[--pps RATE] [--seed K] [--batch B]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	int have = 0;
	memset(o, 0, sizeof(*o));
	o->batch = 64;
	o->seed = 1;
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i];
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(k, "--iface")) {
			o->iface = v;
			have |= 1;
		} else if (!strcmp(k, "--src-mac")) {
			if (parse_mac(v, o->src_mac))
				usage();
			have |= 2;
		} else if (!strcmp(k, "--dst-mac")) {
			if (parse_mac(v, o->dst_mac))
				usage();
			have |= 4;
		} else if (!strcmp(k, "--dst")) {
			struct in_addr a;
			if (inet_pton(AF_INET, v, &a) != 1)
				usage();
			o->dst = ntohl(a.s_addr);
			have |= 8;
		} else if (!strcmp(k, "--dport")) {
			long p = strtol(v, NULL, 10);
			if (p < 1 || p > 65535)
				usage();
			o->dport = (uint16_t)p;
			have |= 16;
		} else if (!strcmp(k, "--proto")) {
			if (!strcmp(v, "udp"))
				o->udp = 1;
			else if (strcmp(v, "tcp"))
				usage();
		} else if (!strcmp(k, "--src-net")) {
			char buf[32];
			struct in_addr a;
			snprintf(buf, sizeof buf, "%s", v);
			char *slash = strchr(buf, '/');
			if (!slash)
				usage();
			*slash = 0;
			long len = strtol(slash + 1, NULL, 10);
			if (inet_pton(AF_INET, buf, &a) != 1 || len < 8 || len > 32)
				usage();
			o->mask = len == 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> len);
			o->net = ntohl(a.s_addr) & o->mask;
			have |= 32;
		} else if (!strcmp(k, "--count")) {
			o->count = strtol(v, NULL, 10);
			have |= 64;
		} else if (!strcmp(k, "--max-time")) {
			o->max_time = strtod(v, NULL);
			have |= 128;
		} else if (!strcmp(k, "--pps")) {
			o->pps = strtod(v, NULL);
		} else if (!strcmp(k, "--seed")) {
			o->seed = strtoull(v, NULL, 10);
		} else if (!strcmp(k, "--batch")) {
			o->batch = atoi(v);
		} else {
			usage();
		}
	}
	/* Both bounds are required: a flood never runs open-ended. */
	if (have != 255 || o->count <= 0 || o->max_time <= 0 || o->max_time > 600 || o->batch < 1 ||
	    o->batch > MAX_BATCH || o->pps < 0)
		usage();
}

int main(int argc, char **argv)
{
	struct opts o;
	parse_args(argc, argv, &o);
	rng_state = o.seed;

	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) {
		perror("flood: socket(AF_PACKET)");
		return 1;
	}
	int one = 1;
	/* Straight to the driver: the qdisc would only add cost. */
	(void)setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof sll);
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = 0;
	sll.sll_ifindex = (int)if_nametoindex(o.iface);
	sll.sll_halen = 6;
	memcpy(sll.sll_addr, o.dst_mac, 6);
	if (sll.sll_ifindex == 0) {
		fprintf(stderr, "flood: no interface %s\n", o.iface);
		return 1;
	}
	if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
		perror("flood: bind");
		return 1;
	}

	static uint8_t frames[MAX_BATCH][FRAME_MAX];
	struct iovec iov[MAX_BATCH];
	struct mmsghdr msgs[MAX_BATCH];
	memset(msgs, 0, sizeof msgs);

	long sent = 0, errors = 0;
	double t0 = now(), t = t0;
	while (sent < o.count && t - t0 < o.max_time) {
		int n = o.batch;
		if (o.count - sent < n)
			n = (int)(o.count - sent);
		if (o.pps > 0) {
			/* Wait until the schedule allows `sent + n` frames. */
			double due = t0 + (sent + n) / o.pps;
			while ((t = now()) < due && t - t0 < o.max_time) {
				double d = due - t;
				struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
				nanosleep(&ts, NULL);
			}
			if (t - t0 >= o.max_time)
				break;
		}
		for (int i = 0; i < n; i++) {
			iov[i].iov_base = frames[i];
			iov[i].iov_len = build(&o, frames[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		int done = 0;
		while (done < n) {
			int r = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
			if (r < 0) {
				if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
					/* The veth backlog is full: count it, yield, go on. */
					errors++;
					sched_yield();
					break;
				}
				perror("flood: sendmmsg");
				return 1;
			}
			done += r;
		}
		sent += done;
		t = now();
	}
	double secs = now() - t0;
	printf("{\"sent\": %ld, \"seconds\": %.3f, \"pps\": %.0f, \"send_errors\": %ld, \"proto\": \"%s\"}\n",
	       sent, secs, secs > 0 ? sent / secs : 0.0, errors, o.udp ? "udp" : "tcp");
	close(fd);
	return 0;
}
