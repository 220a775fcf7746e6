//! Generated `wgmma.mma_async` wrappers (PTX ISA §9.7.15.5): one instruction has N/2
//! accumulator operands for `m64nNk32`, so the wrapper for the kernel's BLOCK_N is written
//! here and inserted after `common.cuh` (see `runtime::source`).

/// CUDA source of `wgmma_fp8(float* d, u64 desc_a, u64 desc_b, int accumulate)`: one
/// `wgmma.mma_async.sync.aligned.m64n{n}k32.f32.e4m3.e4m3` with both operands in shared
/// memory, `d += A·B` when `accumulate != 0`, else `d = A·B`.
///
/// `n` must be a multiple of 8 in `8..=256` (the instruction's shapes).
pub fn fp8_wrapper(n: u32) -> String {
    fp8_wrapper_named("wgmma_fp8", n)
}

/// [`fp8_wrapper`] under another function name (a kernel may need two N).
pub fn fp8_wrapper_named(name: &str, n: u32) -> String {
    assert!(
        n % 8 == 0 && (8..=256).contains(&n),
        "wgmma N must be a multiple of 8 in 8..=256"
    );
    let regs = (n / 2) as usize;
    let list = (0..regs)
        .map(|i| format!("%{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let outs = (0..regs)
        .map(|i| format!("\"+f\"(d[{i}])"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SG_DEVICE void {name}(float* d, u64 desc_a, u64 desc_b, int accumulate) {{\n\
         \x20   asm volatile(\n\
         \x20       \"{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{acc}, 0;\\n\"\n\
         \x20       \"wgmma.mma_async.sync.aligned.m64n{n}k32.f32.e4m3.e4m3 {{{list}}}, %{da}, %{db}, p, 1, 1;\\n}}\\n\"\n\
         \x20       : {outs}\n\
         \x20       : \"l\"(desc_a), \"l\"(desc_b), \"r\"(accumulate));\n\
         }}\n",
        acc = regs + 2,
        da = regs,
        db = regs + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operand_numbering() {
        let s = fp8_wrapper(16);
        assert!(s.contains("m64n16k32"));
        assert!(s.contains("{%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1;"));
        assert!(s.contains("setp.ne.b32 p, %10, 0;"));
        assert_eq!(s.matches("\"+f\"").count(), 8);
        let h = fp8_wrapper_named("wgmma_fp8_half", 88);
        assert!(h.contains("void wgmma_fp8_half(float* d"));
        assert!(h.contains("m64n88k32"));
        assert_eq!(h.matches("\"+f\"").count(), 44);
    }
}
