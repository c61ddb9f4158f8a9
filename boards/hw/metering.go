package hw

// Partitions of the metering features. A board that has them returns them
// from Partition; one that does not returns an error, and the agent runs
// without the audit trail (and refuses what needs it).
const (
	PartAudit = "audit" // the legal-metrology audit log (package audit)
	PartOpLog = "oplog" // the bounded operational event ring (package audit)
)
