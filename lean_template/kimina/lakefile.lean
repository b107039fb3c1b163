import Lake
open Lake DSL

-- proverctl Lean workspace, profile `kimina`: every revision pinned (see README.md).
package «proverctl-kimina»

require mathlib from git
  "https://github.com/leanprover-community/mathlib4" @ "9837ca9d65d9de6fad1ef4381750ca688774e608"

require REPL from git
  "https://github.com/leanprover-community/repl" @ "21966799da3691a0912b5a15193585bd2dd7165d"

-- The kernel judge behind every `proved` (SafeVerify, branch minif2f-kimina-check; see ../JUDGE.md).
require SafeVerify from git
  "https://github.com/GasStationManager/SafeVerify" @ "577e95319a2bb1bb8df541f0c645811f6577a0ae"
