package manifest

// Request is the software update request a node sends to a distributor
// (the head-end or a data collector) when it asks for a resource: its
// device characteristics. `meterupd request` prints it as JSON.
type Request struct {
	VendorID   uint32            `json:"vendor_id"`
	ClassID    uint32            `json:"class_id"`
	DeviceType string            `json:"device_type"`
	Hardware   uint32            `json:"hardware_revision"`
	Variant    string            `json:"variant,omitempty"`
	Versions   map[string]string `json:"versions"` // component name → installed version
	Sequence   uint64            `json:"sequence"` // highest package sequence accepted
	// Want lists, per component a manifest names, the version it offers
	// for this node (empty when the manifest is not given).
	Want map[string]string `json:"want,omitempty"`
	// Schemas are the manifest schemas the node reads (SchemaVersion,
	// SchemaBlocks): a distributor sends a node only a package it can
	// read. Absent in the requests of nodes that read schema 1 alone.
	Schemas []uint `json:"schemas,omitempty"`
	// DeltaFormats lists the node-format delta versions the node applies
	// (delta.NodeFormats). A head-end sends a node-format delta only in one
	// of them; a request without the field comes from a node that reads
	// version 1 only.
	DeltaFormats []int `json:"delta_formats,omitempty"`
}

// NewRequest returns the request of node, whose sequence floor is floor.
// With a manifest m (may be nil) it also names the versions m would take
// the node to, so a distributor can send only what this node needs.
func NewRequest(node NodeInfo, floor uint64, m *Manifest) Request {
	r := Request{
		VendorID:   node.VendorID,
		ClassID:    node.ClassID,
		DeviceType: node.DeviceType,
		Hardware:   node.Hardware,
		Variant:    node.Variant,
		Versions:   map[string]string{},
		Sequence:   floor,
		Schemas:    Schemas,
	}
	for c, v := range node.Installed {
		r.Versions[c.String()] = v
	}
	if m != nil {
		if plan, err := m.Select(node); err == nil {
			r.Want = map[string]string{}
			for c, v := range plan.Targets {
				r.Want[c.String()] = v
			}
		}
	}
	return r
}
