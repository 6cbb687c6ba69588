package testfunc

// ZeroCodeResponse is what the zero-code test function (./zerocode) returns
// on every invoke.
type ZeroCodeResponse struct {
	// Init is what the function found on the first line of its Init, before
	// anything else (and with no HTTP call of its own).
	Init ZeroCodeSnapshot `json:"init"`
	// Now is the same, looked at again during this invoke.
	Now ZeroCodeSnapshot `json:"now"`
}

// ZeroCodeSnapshot is the function's view of its process: its arguments, the
// variables named by FUNC_REPORT_ENV and the files named by FUNC_REPORT_FILES.
type ZeroCodeSnapshot struct {
	Args  []string             `json:"args"`
	Env   map[string]*string   `json:"env"` // nil: not set
	Files map[string]FileState `json:"files"`
}

// FileState is one file as the function saw it.
type FileState struct {
	Exists  bool   `json:"exists"`
	Mode    uint32 `json:"mode"` // permission bits
	Content []byte `json:"content"`
	Error   string `json:"error,omitempty"`
}
