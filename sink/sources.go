package sink

import (
	"fmt"
	"net/netip"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/pcapout"
)

// sourceKey identifies where envelopes come from: the sender, the kind of
// envelope and its identifier (a port's tag, a VNI, a session).
type sourceKey struct {
	addr netip.Addr
	kind decap.Kind
	id   uint32
}

// sources numbers the sources seen as output interfaces. Only the engine's
// goroutine uses it.
type sources struct {
	index map[sourceKey]int
}

// lookup returns the interface of r's source, declaring it on first sight.
func (s *sources) lookup(r *decap.Result, e *Engine) int {
	k := sourceKey{r.Src, r.Kind, r.ID}
	if i, ok := s.index[k]; ok {
		return i
	}
	i := e.cfg.Output.AddInterface(e.describe(k, r.DstPort))
	s.index[k] = i
	return i
}

// idNames says what each kind's identifier is.
var idNames = [decap.NumKinds]string{
	decap.KindNIC: "tag", decap.KindVXLAN: "vni", decap.KindGENEVE: "vni",
	decap.KindERSPAN2: "session", decap.KindERSPAN3: "session", decap.KindGRETAP: "key",
}

// describe names a source: by the port map for a tagged port, else by its
// sender and identifier.
func (e *Engine) describe(k sourceKey, port uint16) pcapout.Interface {
	name := k.addr.String()
	if k.id != 0 {
		name = fmt.Sprintf("%s %s %d", k.addr, idNames[k.kind], k.id)
	}
	if k.kind == decap.KindNIC {
		if n, ok := e.cfg.PortMap.Lookup(k.addr, k.id); ok {
			name = n
		}
	}
	desc := fmt.Sprintf("%s envelopes from %s", k.kind, k.addr)
	if k.id != 0 {
		desc += fmt.Sprintf(", %s %d", idNames[k.kind], k.id)
	}
	if k.kind.UDP() {
		desc += fmt.Sprintf(", to UDP port %d", port)
	}
	return pcapout.Interface{Name: name, Description: desc}
}
