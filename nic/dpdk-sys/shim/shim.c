/*
 * Exports DPDK's static-inline fast paths as real symbols so Rust can call them.
 *
 * DPDK puts its per-packet operations (burst receive and transmit, mbuf allocation, data pointers) in headers as
 * static inline functions, so they have no symbol in any shared library. Each wrapper here is one line around one
 * of them, named `dpdk_sys_<original name without rte_>`. The layout asserts pin the sizes that the Rust side
 * declares as opaque byte arrays; a DPDK upgrade that changes them fails this compile instead of corrupting memory.
 */
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

_Static_assert(sizeof(struct rte_eth_conf) == 2272, "rte_eth_conf size changed: update RteEthConf in lib.rs");
_Static_assert(_Alignof(struct rte_eth_conf) == 8, "rte_eth_conf alignment changed: update lib.rs");
_Static_assert(sizeof(struct rte_ether_addr) == 6, "rte_ether_addr size changed: update lib.rs");
_Static_assert(sizeof(struct rte_eth_stats) == 704, "rte_eth_stats size changed: update RteEthStats in lib.rs");
_Static_assert(RTE_ETH_NAME_MAX_LEN == 64, "port name length changed: update RTE_ETH_NAME_MAX_LEN in lib.rs");
_Static_assert(RTE_ETHDEV_QUEUE_STAT_CNTRS == 16, "queue counter count changed: update RteEthStats in lib.rs");

uint16_t dpdk_sys_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t dpdk_sys_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *dpdk_sys_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int dpdk_sys_pktmbuf_alloc_bulk(struct rte_mempool *pool, struct rte_mbuf **mbufs, unsigned count)
{
	return rte_pktmbuf_alloc_bulk(pool, mbufs, count);
}

void dpdk_sys_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

/* Start of the packet data in the first segment (rte_pktmbuf_mtod). */
void *dpdk_sys_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t dpdk_sys_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t dpdk_sys_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint16_t dpdk_sys_pktmbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

/* Room left after the data in the last segment, i.e. how much rte_pktmbuf_append can still grant. */
uint16_t dpdk_sys_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

char *dpdk_sys_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

/* Removes len bytes from the end of the packet; 0 on success, -1 when the last segment is shorter than len. */
int dpdk_sys_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

unsigned dpdk_sys_socket_id(void)
{
	return rte_socket_id();
}

/* rte_errno is a per-lcore (thread-local) variable behind a macro. */
int dpdk_sys_errno(void)
{
	return rte_errno;
}

size_t dpdk_sys_sizeof_eth_conf(void)
{
	return sizeof(struct rte_eth_conf);
}

size_t dpdk_sys_sizeof_eth_stats(void)
{
	return sizeof(struct rte_eth_stats);
}
