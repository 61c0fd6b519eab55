/*
 * Anchor for the reflector throughput benchmark: a minimal stateless STAMP
 * Session-Reflector (RFC 8762 §4.3, unauthenticated) in C with recvmmsg /
 * sendmmsg. It does the same kernel work per packet as the Go reflector:
 * SO_TIMESTAMPNS receive timestamp (T2), IPV6_PKTINFO so the reply leaves
 * from the probed address, hop limit copied, T3 just before sendmmsg.
 *
 * Usage: reflector PORT
 * Runs until killed. Built by the benchmark with gcc -O2 into a temp dir.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define BUFLEN 4097
#define OOBLEN 128
#define BASE 44
#define NTP_OFFSET 2208988800ULL

static uint64_t ntp(const struct timespec *ts)
{
	uint64_t sec = (uint64_t)ts->tv_sec + NTP_OFFSET;
	uint64_t frac = (((uint64_t)ts->tv_nsec << 32) + 500000000ULL) / 1000000000ULL;
	return sec << 32 | (frac & 0xffffffffULL);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	int one = 1, zero = 0, buf = 1 << 21;
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
	setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
	setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)atoi(argv[1])), .sin6_addr = in6addr_any};
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		perror("bind");
		return 1;
	}

	static uint8_t in[BATCH][BUFLEN], out[BATCH][BUFLEN], oob[BATCH][OOBLEN], roob[BATCH][OOBLEN];
	static struct sockaddr_in6 names[BATCH];
	static struct iovec iov[BATCH], oiov[BATCH];
	static struct mmsghdr msgs[BATCH], omsgs[BATCH];

	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){in[i], BUFLEN};
			msgs[i].msg_hdr = (struct msghdr){.msg_name = &names[i], .msg_namelen = sizeof names[i],
				.msg_iov = &iov[i], .msg_iovlen = 1, .msg_control = oob[i], .msg_controllen = OOBLEN};
		}
		/* Drain without blocking, sleep in poll only when empty: the same
		 * strategy as the Go reflector on the runtime's netpoller, so a
		 * burst is taken in full batches. */
		int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd p = {.fd = fd, .events = POLLIN};
				poll(&p, 1, -1);
			}
			continue;
		}
		int k = 0;
		for (int i = 0; i < n; i++) {
			unsigned len = msgs[i].msg_len;
			if (len < BASE || len >= BUFLEN)
				continue;
			struct timespec t2 = {0};
			struct in6_pktinfo pi = {0};
			int hops = 0;
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
				if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS)
					memcpy(&t2, CMSG_DATA(c), sizeof t2);
				else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO)
					memcpy(&pi, CMSG_DATA(c), sizeof pi);
				else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)
					memcpy(&hops, CMSG_DATA(c), sizeof hops);
			}
			uint8_t *q = in[i], *r = out[k];
			memcpy(r + BASE, q + BASE, len - BASE);
			memset(r, 0, BASE);
			memcpy(r, q, 4);           /* sequence number (stateless) */
			memcpy(r + 14, q + 14, 2); /* SSID */
			put64(r + 16, ntp(&t2));   /* T2 */
			memcpy(r + 24, q, 4);      /* sender sequence number */
			memcpy(r + 28, q + 4, 10); /* sender timestamp + error estimate */
			r[40] = (uint8_t)hops;
			oiov[k] = (struct iovec){r, len};
			struct cmsghdr *c = (struct cmsghdr *)roob[k];
			c->cmsg_level = IPPROTO_IPV6;
			c->cmsg_type = IPV6_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof pi);
			pi.ipi6_ifindex = 0;
			memcpy(CMSG_DATA(c), &pi, sizeof pi);
			omsgs[k].msg_hdr = (struct msghdr){.msg_name = &names[i], .msg_namelen = msgs[i].msg_hdr.msg_namelen,
				.msg_iov = &oiov[k], .msg_iovlen = 1, .msg_control = roob[k], .msg_controllen = CMSG_SPACE(sizeof pi)};
			k++;
		}
		struct timespec t3;
		clock_gettime(CLOCK_REALTIME, &t3);
		uint64_t t3n = ntp(&t3);
		for (int i = 0; i < k; i++) {
			put64(out[i] + 4, t3n);
			out[i][12] = 0x00, out[i][13] = 0x01; /* error estimate: unsynced, multiplier 1 */
		}
		for (int off = 0; off < k;) {
			int s = sendmmsg(fd, omsgs + off, k - off, 0);
			if (s <= 0) {
				off++;
				continue;
			}
			off += s;
		}
	}
}
