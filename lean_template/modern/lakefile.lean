import Lake
open Lake DSL

-- proverctl Lean workspace, profile `modern`: every revision pinned (see README.md).
package «proverctl-modern»

require mathlib from git
  "https://github.com/leanprover-community/mathlib4" @ "a3a10db0e9d66acbebf76c5e6a135066525ac900"

require REPL from git
  "https://github.com/leanprover-community/repl" @ "0e9e6e2962ab0a51440513d9ee028c8aa66bb53b"

-- The kernel judge behind every `proved` (SafeVerify, branch main; see ../JUDGE.md).
require SafeVerify from git
  "https://github.com/GasStationManager/SafeVerify" @ "b291b588a53999a7e837dda61c7dbfe8c550c814"
