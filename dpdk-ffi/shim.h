/* Exported wrappers of DPDK's static-inline functions, so Rust can call them.
 * Each is a one-line forward; no policy lives here. */
#ifndef RVS_DPDK_SHIM_H
#define RVS_DPDK_SHIM_H
#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

uint16_t rvs_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t rvs_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void rvs_pktmbuf_free(struct rte_mbuf *m);
void rvs_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count);
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void *rvs_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m);
int rvs_pktmbuf_is_contiguous(const struct rte_mbuf *m);
uint32_t rvs_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_data_len(const struct rte_mbuf *m);
uint64_t rvs_rdtsc(void);
uint64_t rvs_get_tsc_hz(void);
unsigned rvs_lcore_id(void);
int rvs_errno(void);
unsigned rvs_ring_sp_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned rvs_ring_sc_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned rvs_ring_count(const struct rte_ring *r);
void rvs_prefetch0(const void *p);
/* DPDK's software Toeplitz hash (rte_thash.h): the reference the engine's
 * own RSS hash and the generator's queue choice are checked against. */
uint32_t rvs_softrss(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key);

#endif
