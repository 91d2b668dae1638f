/* The DPDK headers rvs binds. Only EAL, ethdev, mbuf, mempool, ring, lcore,
 * cycles and malloc (the connection table's hugepage memory): we parse
 * packets ourselves (engine::packet), and the protocol
 * headers (rte_arp.h, GTP, L2TP) are packed structs that hold aligned ones,
 * which bindgen cannot express (E0588). */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_malloc.h>

#include "shim.h"
