package shadow

// Result is the integer result code of a report: the LwM2M firmware-update
// object's "Update Result" values (OMA LwM2M object 5, resource 5) where
// they fit, and meter-specific codes from 100. The table is documented in
// docs/mqtt.md; a code's meaning never changes.
type Result int

// LwM2M firmware-update results 0–11.
const (
	ResultInitial          Result = 0  // nothing done yet, or in progress
	ResultSuccess          Result = 1  // the new set committed after its trial
	ResultNoStorage        Result = 2  // not enough room for the package
	ResultOutOfMemory      Result = 3  // out of RAM while downloading
	ResultConnectionLost   Result = 4  // the download broke off (will resume)
	ResultIntegrity        Result = 5  // a digest did not match
	ResultUnsupportedType  Result = 6  // not a package this node takes
	ResultInvalidURI       Result = 7  // a URL it cannot fetch
	ResultUpdateFailed     Result = 8  // the update failed
	ResultUnsupportedProto Result = 9  // a download protocol it does not speak
	ResultCancelled        Result = 10 // the head-end cancelled the job
	ResultDeferred         Result = 11 // activation deferred (a local veto)
)

// Meter-specific results, from 100.
const (
	ResultRolledBack    Result = 100 // the new set failed; back on the previous set
	ResultFellBack      Result = 101 // both sets failed; on the factory set F
	ResultSignature     Result = 102 // the package's signature or key was refused
	ResultReplay        Result = 103 // a replayed or older package (sequence floor)
	ResultNotApplicable Result = 104 // no item of the package fits this node
	ResultValidation    Result = 105 // a level-3 validation check refused it
	ResultBusy          Result = 106 // another update is in progress
	ResultBadDocument   Result = 107 // the desired document was refused
	ResultStaleDocument Result = 108 // a duplicate or stale desired document, ignored
	ResultDowngrade     Result = 110 // a downgrade the package does not allow
	ResultClockInvalid  Result = 111 // a scheduled activation waits: the clock is not valid
	ResultVetoForced    Result = 112 // activated over a veto by force
	ResultDeferExpired  Result = 113 // activated when the maximum deferral ran out
	ResultPowerSource   Result = 114 // refused on battery power
)
