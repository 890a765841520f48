#ifndef DPCAP_RTEFLOW_H
#define DPCAP_RTEFLOW_H

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>

// Helpers that build rte_flow structures in C memory (cgo cannot set
// rte_flow_attr's bitfields or reach into packed headers), and a walker
// that renders them back as text for tests.
void dp_attr(struct rte_flow_attr *a, uint32_t group, uint32_t prio, int ingress, int transfer);
void *dp_ipv4(uint32_t src, uint32_t dst, uint8_t proto);
void *dp_ipv6(const uint8_t *src, const uint8_t *dst, uint8_t proto);
void *dp_l4(int tcp, uint16_t sport, uint16_t dport);
void *dp_jump(uint32_t group);
void *dp_sample(uint32_t ratio, const struct rte_flow_action *actions);
void *dp_raw_encap(const uint8_t *data, size_t size);
void dp_raw_encap_free(void *v);
void *dp_port_id(uint32_t id);
void *dp_count(void);
int dp_walk(const struct rte_flow_attr *attr, const struct rte_flow_item *it, const struct rte_flow_action *a, char *b, size_t n);
int dp_errno(void);
#endif
