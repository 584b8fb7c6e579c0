//! CPU backend comparison at UniLIP-like sizes: `cargo bench --bench backends --features ndarray`.
//!
//! Times a matmul (a Qwen2 MLP projection over 300 tokens), a 3×3 conv2d (a DC-AE decoder stage)
//! and a softmax (attention scores of one ViT layer) on Flex and NdArray, and prints ms and GFLOP/s.

use std::time::Instant;

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Distribution;
use burn_ndarray::NdArray;

fn time<F: FnMut()>(mut f: F) -> f64 {
    f(); // warm-up
    let reps = 5;
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn sync<B: Backend, const D: usize>(t: Tensor<B, D>) {
    let _ = t.into_data();
}

fn run<B: Backend>(name: &str, dev: &B::Device) {
    let a = Tensor::<B, 2>::random([300, 896], Distribution::Normal(0.0, 1.0), dev);
    let w = Tensor::<B, 2>::random([896, 4864], Distribution::Normal(0.0, 1.0), dev);
    let mm = time(|| sync(a.clone().matmul(w.clone())));
    let mm_flop = 2.0 * 300.0 * 896.0 * 4864.0;

    let x = Tensor::<B, 4>::random([1, 128, 128, 128], Distribution::Normal(0.0, 1.0), dev);
    let k = Tensor::<B, 4>::random([128, 128, 3, 3], Distribution::Normal(0.0, 1.0), dev);
    let cv = time(|| {
        sync(conv2d(
            x.clone(),
            k.clone(),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        ))
    });
    let cv_flop = 2.0 * 128.0 * 128.0 * 128.0 * 128.0 * 9.0;

    let s = Tensor::<B, 4>::random([1, 16, 1025, 1025], Distribution::Normal(0.0, 1.0), dev);
    let sm = time(|| sync(softmax(s.clone(), 3)));

    println!(
        "{name:<8} matmul 300x896x4864 {mm:8.2} ms ({:5.1} GFLOP/s) | conv3x3 128->128 @128² {cv:8.2} ms ({:5.1} GFLOP/s) | softmax 16x1025² {sm:7.2} ms",
        mm_flop / mm / 1e6,
        cv_flop / cv / 1e6
    );
}

fn main() {
    println!(
        "threads: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    run::<Flex>("flex", &Default::default());
    run::<NdArray>("ndarray", &Default::default());
}
