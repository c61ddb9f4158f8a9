package node

import "os"

var osGetpid = os.Getpid
