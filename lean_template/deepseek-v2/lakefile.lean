import Lake
open Lake DSL

-- proverctl Lean workspace, profile `deepseek-v2`: every revision pinned (see README.md).
package «proverctl-deepseek-v2»

require mathlib from git
  "https://github.com/leanprover-community/mathlib4" @ "d1d1e4b72c6e009edd97cabe1d661b021fe8eeae"

require REPL from git
  "https://github.com/leanprover-community/repl" @ "7df77c0a1c9188ab58c76d4138a06ae5e0c32282"

-- The kernel judge behind every `proved` (SafeVerify, branch minif2f-deepseek-check; see ../JUDGE.md).
require SafeVerify from git
  "https://github.com/GasStationManager/SafeVerify" @ "0c0f7dcf6cb66333a944d062ec4c431986da1ca6"
