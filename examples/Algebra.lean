import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

/-- What is the positive difference between $120\%$ of 30 and $130\%$ of 20? Show that it is 10. -/
theorem mathd_algebra_10 : abs ((120 : ℝ) / 100 * 30 - 130 / 100 * 20) = 10 := by
  sorry

/-- Show that for any real $x$, $x^2 - 2x + 1 \ge 0$. -/
theorem sq_sub_nonneg (x : ℝ) : x ^ 2 - 2 * x + 1 ≥ 0 := by
  sorry

/-- The sum of the first $n$ odd numbers is $n^2$ (already proved: proverctl leaves it alone). -/
theorem two_add_two : (2 : ℕ) + 2 = 4 := by
  norm_num
