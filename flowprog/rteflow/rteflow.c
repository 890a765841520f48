//go:build dpdk

#include "rteflow.h"

// rte_flow_attr has bitfields, which cgo cannot set.
void dp_attr(struct rte_flow_attr *a, uint32_t group, uint32_t prio, int ingress, int transfer) {
	memset(a, 0, sizeof(*a));
	a->group = group;
	a->priority = prio;
	a->ingress = ingress;
	a->transfer = transfer;
}

void *dp_ipv4(uint32_t src, uint32_t dst, uint8_t proto) {
	struct rte_flow_item_ipv4 *p = calloc(1, sizeof(*p));
	p->hdr.src_addr = src;
	p->hdr.dst_addr = dst;
	p->hdr.next_proto_id = proto;
	return p;
}

void *dp_ipv6(const uint8_t *src, const uint8_t *dst, uint8_t proto) {
	struct rte_flow_item_ipv6 *p = calloc(1, sizeof(*p));
	memcpy(p->hdr.src_addr, src, 16);
	memcpy(p->hdr.dst_addr, dst, 16);
	p->hdr.proto = proto;
	return p;
}

void *dp_l4(int tcp, uint16_t sport, uint16_t dport) {
	if (tcp) {
		struct rte_flow_item_tcp *p = calloc(1, sizeof(*p));
		p->hdr.src_port = sport;
		p->hdr.dst_port = dport;
		return p;
	}
	struct rte_flow_item_udp *p = calloc(1, sizeof(*p));
	p->hdr.src_port = sport;
	p->hdr.dst_port = dport;
	return p;
}

void *dp_jump(uint32_t group) {
	struct rte_flow_action_jump *p = calloc(1, sizeof(*p));
	p->group = group;
	return p;
}

void *dp_sample(uint32_t ratio, const struct rte_flow_action *actions) {
	struct rte_flow_action_sample *p = calloc(1, sizeof(*p));
	p->ratio = ratio;
	p->actions = actions;
	return p;
}

void *dp_raw_encap(const uint8_t *data, size_t size) {
	struct rte_flow_action_raw_encap *p = calloc(1, sizeof(*p));
	p->data = malloc(size);
	memcpy(p->data, data, size);
	p->size = size;
	return p;
}

void dp_raw_encap_free(void *v) {
	struct rte_flow_action_raw_encap *p = v;
	free(p->data);
	free(p);
}

void *dp_port_id(uint32_t id) {
	struct rte_flow_action_port_id *p = calloc(1, sizeof(*p));
	p->id = id;
	return p;
}

void *dp_count(void) { return calloc(1, sizeof(struct rte_flow_action_count)); }

// dp_walk renders encoded structs as text, for tests to compare with the
// program: what the PMD will read, not what Go meant to write.
static int dp_walk_actions(char *b, size_t n, int off, const struct rte_flow_action *a) {
	for (; a->type != RTE_FLOW_ACTION_TYPE_END; a++) {
		switch (a->type) {
		case RTE_FLOW_ACTION_TYPE_JUMP:
			off += snprintf(b + off, n - off, " jump(group=%u)", ((const struct rte_flow_action_jump *)a->conf)->group);
			break;
		case RTE_FLOW_ACTION_TYPE_SAMPLE: {
			const struct rte_flow_action_sample *s = a->conf;
			off += snprintf(b + off, n - off, " sample(ratio=%u [", s->ratio);
			off = dp_walk_actions(b, n, off, s->actions);
			off += snprintf(b + off, n - off, " ])");
			break;
		}
		case RTE_FLOW_ACTION_TYPE_RAW_ENCAP: {
			const struct rte_flow_action_raw_encap *r = a->conf;
			off += snprintf(b + off, n - off, " raw_encap(size=%zu data=", r->size);
			for (size_t i = 0; i < r->size; i++)
				off += snprintf(b + off, n - off, "%02x", r->data[i]);
			off += snprintf(b + off, n - off, ")");
			break;
		}
		case RTE_FLOW_ACTION_TYPE_PORT_ID:
			off += snprintf(b + off, n - off, " port_id(id=%u)", ((const struct rte_flow_action_port_id *)a->conf)->id);
			break;
		case RTE_FLOW_ACTION_TYPE_COUNT:
			off += snprintf(b + off, n - off, " count");
			break;
		default:
			off += snprintf(b + off, n - off, " action(%d)", a->type);
		}
		if (off >= (int)n) return n - 1;
	}
	return off;
}

static void dp_hex(char *b, size_t n, int *off, const uint8_t *p, size_t len) {
	for (size_t i = 0; i < len; i++) *off += snprintf(b + *off, n - *off, "%02x", p[i]);
}

int dp_walk(const struct rte_flow_attr *attr, const struct rte_flow_item *it, const struct rte_flow_action *a, char *b, size_t n) {
	int off = snprintf(b, n, "attr(group=%u prio=%u ingress=%u transfer=%u)", attr->group, attr->priority, attr->ingress, attr->transfer);
	for (; it->type != RTE_FLOW_ITEM_TYPE_END; it++) {
		switch (it->type) {
		case RTE_FLOW_ITEM_TYPE_ETH:
			off += snprintf(b + off, n - off, " eth(spec=%s)", it->spec ? "set" : "none");
			break;
		case RTE_FLOW_ITEM_TYPE_IPV4: {
			const struct rte_flow_item_ipv4 *s = it->spec, *m = it->mask;
			off += snprintf(b + off, n - off, " ipv4(src=%08x/%08x dst=%08x/%08x proto=%u/%u)",
				rte_be_to_cpu_32(s->hdr.src_addr), rte_be_to_cpu_32(m->hdr.src_addr),
				rte_be_to_cpu_32(s->hdr.dst_addr), rte_be_to_cpu_32(m->hdr.dst_addr),
				s->hdr.next_proto_id, m->hdr.next_proto_id);
			break;
		}
		case RTE_FLOW_ITEM_TYPE_IPV6: {
			const struct rte_flow_item_ipv6 *s = it->spec, *m = it->mask;
			off += snprintf(b + off, n - off, " ipv6(src=");
			dp_hex(b, n, &off, s->hdr.src_addr, 16);
			off += snprintf(b + off, n - off, "/");
			dp_hex(b, n, &off, m->hdr.src_addr, 16);
			off += snprintf(b + off, n - off, " dst=");
			dp_hex(b, n, &off, s->hdr.dst_addr, 16);
			off += snprintf(b + off, n - off, "/");
			dp_hex(b, n, &off, m->hdr.dst_addr, 16);
			off += snprintf(b + off, n - off, " proto=%u/%u)", s->hdr.proto, m->hdr.proto);
			break;
		}
		case RTE_FLOW_ITEM_TYPE_TCP: {
			const struct rte_flow_item_tcp *s = it->spec, *m = it->mask;
			off += snprintf(b + off, n - off, " tcp(src=%u/%04x dst=%u/%04x)",
				rte_be_to_cpu_16(s->hdr.src_port), rte_be_to_cpu_16(m->hdr.src_port),
				rte_be_to_cpu_16(s->hdr.dst_port), rte_be_to_cpu_16(m->hdr.dst_port));
			break;
		}
		case RTE_FLOW_ITEM_TYPE_UDP: {
			const struct rte_flow_item_udp *s = it->spec, *m = it->mask;
			off += snprintf(b + off, n - off, " udp(src=%u/%04x dst=%u/%04x)",
				rte_be_to_cpu_16(s->hdr.src_port), rte_be_to_cpu_16(m->hdr.src_port),
				rte_be_to_cpu_16(s->hdr.dst_port), rte_be_to_cpu_16(m->hdr.dst_port));
			break;
		}
		default:
			off += snprintf(b + off, n - off, " item(%d)", it->type);
		}
		if (off >= (int)n) return n - 1;
	}
	off += snprintf(b + off, n - off, " /");
	return dp_walk_actions(b, n, off, a);
}

int dp_errno(void) { return rte_errno; }
