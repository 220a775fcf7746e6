//! Dimension and shape strategies biased to the sizes kernels get wrong.

use proptest::num::usize::BinarySearch;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::{NewTree, ValueTree};
use proptest::test_runner::TestRunner;

/// Dimensions every GEMM kernel must survive: a single row, odd sizes below a tile,
/// exactly one 16-wide MMA tile, one short of / exactly / one past a 128 block, and two
/// production sizes that are multiples of 64 but not of 128 (576 = 4.5·128,
/// 1088 = 8.5·128).
pub const EDGE_DIMS: [usize; 9] = [1, 7, 15, 16, 127, 128, 129, 576, 1088];

/// The block sizes of the kernels and recipes: the MMA K step and tile granularities
/// (16, 64), the MX/FP4 scale block (32) and the FP8 scale block (128).
pub const BLOCK_SIZES: [usize; 4] = [16, 32, 64, 128];

/// Caps on a GEMM shape `[M, K] × [N, K]` so CPU tests stay fast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeCap {
    /// Largest M.
    pub max_m: usize,
    /// Largest N.
    pub max_n: usize,
    /// Largest K.
    pub max_k: usize,
    /// Largest `M·N·K` (the work of one GEMM).
    pub max_mnk: usize,
}

impl ShapeCap {
    /// Tiny problems (every dimension at most 33, `M·N·K <= 4096`): shrinking and
    /// doc-tests.
    pub const TINY: ShapeCap = ShapeCap {
        max_m: 33,
        max_n: 33,
        max_k: 33,
        max_mnk: 4096,
    };

    /// Shapes an exact CPU oracle checks in milliseconds: M, N up to 129, K up to 1088,
    /// `M·N·K <= 2^19`. Every edge of [`EDGE_DIMS`] but 576 and 1088 is reachable for M
    /// and N, all of them for K.
    pub const CPU: ShapeCap = ShapeCap {
        max_m: 129,
        max_n: 129,
        max_k: 1088,
        max_mnk: 1 << 19,
    };

    /// Larger shapes for the reference alone (its GEMM is fast; an exact oracle is
    /// not): every dimension up to 1088, `M·N·K <= 2^24`.
    pub const REFERENCE: ShapeCap = ShapeCap {
        max_m: 1088,
        max_n: 1088,
        max_k: 1088,
        max_mnk: 1 << 24,
    };

    /// GPU kernel tests: every dimension up to 4096, `M·N·K <= 2^34`.
    pub const GPU: ShapeCap = ShapeCap {
        max_m: 4096,
        max_n: 4096,
        max_k: 4096,
        max_mnk: 1 << 34,
    };
}

/// A dimension in `1..=max` (`max` is raised to 1 if 0), drawn biased to the edges:
/// an element of [`EDGE_DIMS`] (3 in 8), a multiple `b·t` of a block size
/// `b ∈` [`BLOCK_SIZES`] (`t` in `1..=16`) or its neighbour `b·t ± 1`, clamped to `max`
/// (3 in 8), or any value (2 in 8).
///
/// Shrinks like an integer, by binary search toward 1, whatever kind of value it was
/// drawn as: a failure that appears from some size on shrinks to exactly that size.
pub fn edge_dim(max: usize) -> BoxedStrategy<usize> {
    let max = max.max(1);
    let edges: Vec<usize> = EDGE_DIMS.iter().copied().filter(|&d| d <= max).collect();
    let blocks =
        (select(BLOCK_SIZES.to_vec()), 1usize..=16, 0usize..3).prop_map(move |(b, t, delta)| {
            let d = match delta {
                0 => b * t,
                1 => b * t - 1,
                _ => b * t + 1,
            };
            d.clamp(1, max)
        });
    EdgeDim {
        draw: prop_oneof![3 => select(edges), 3 => blocks, 2 => 1..=max].boxed(),
    }
    .boxed()
}

/// Draws with a biased strategy, shrinks as an integer toward 1.
#[derive(Debug)]
struct EdgeDim {
    draw: BoxedStrategy<usize>,
}

impl Strategy for EdgeDim {
    type Tree = BinarySearch;
    type Value = usize;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        let d = self.draw.new_tree(runner)?.current();
        Ok(BinarySearch::new_above(1, d))
    }
}

/// A GEMM shape `(M, N, K)` within `cap`, each dimension from [`edge_dim`]; shapes
/// over `cap.max_mnk` are rejected and drawn again (shrinking only ever lowers the
/// product). Shrinks M, then N, then K.
pub fn gemm_shape(cap: ShapeCap) -> impl Strategy<Value = (usize, usize, usize)> {
    (
        edge_dim(cap.max_m),
        edge_dim(cap.max_n),
        edge_dim(cap.max_k),
    )
        .prop_filter("M·N·K over the cap", move |&(m, n, k)| {
            m.saturating_mul(n).saturating_mul(k) <= cap.max_mnk
        })
}

/// A matrix shape `(rows, cols)` with `rows <= max_rows`, `cols <= max_cols` and
/// `rows·cols <= max_elems`, each dimension from [`edge_dim`].
pub fn matrix_shape(
    max_rows: usize,
    max_cols: usize,
    max_elems: usize,
) -> impl Strategy<Value = (usize, usize)> {
    (edge_dim(max_rows), edge_dim(max_cols))
        .prop_filter("rows·cols over the cap", move |&(r, c)| {
            r.saturating_mul(c) <= max_elems
        })
}
