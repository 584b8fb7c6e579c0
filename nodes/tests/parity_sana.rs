//! Parity of the SANA DiT against diffusers (`sana/` fixture: with and without the sin-cos PE,
//! per-block traces) and against UniLIP's own DiT call (`unilip_e2e/`: bf16-rounded PE).

use burn::prelude::*;
use unilip_nodes::fixtures::expect_tensor as read;
use unilip_nodes::fixtures::{compare, Fixture};
use unilip_nodes::models::sana::{PosEmbed, SanaConfig, SanaTransformer};
use unilip_nodes::weights::{Checkpoint, HostTensor, VarBuilder};

type B = burn::backend::Flex;

fn check<const D: usize>(name: &str, got: Tensor<B, D>, want: &HostTensor, tol: (f64, f64)) -> f64 {
    let diff = compare(name, &HostTensor::from_burn(got), want, tol.0, tol.1)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{name}: max |diff| {diff:.3e}");
    diff
}

/// Integer mask → f32 host tensor.
fn mask_f32(ck: &Checkpoint, key: &str) -> HostTensor {
    let (shape, data) = ck.read_i64(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    HostTensor {
        shape,
        data: data.into_iter().map(|v| v as f32).collect(),
    }
}

#[test]
fn parity_sana_fixture_with_and_without_pe() {
    let Some(fx) = Fixture::open("sana").expect("open sana fixture") else {
        return;
    };
    let cfg: SanaConfig =
        serde_json::from_value(fx.config["upstream_config"].clone()).expect("sana upstream_config");
    let dev = Default::default();
    let vb = VarBuilder::<B>::new(fx.weights.clone(), &dev);
    let model = SanaTransformer::load(&cfg, &vb).expect("load sana");
    let tol = fx.tolerance();
    let trace = fx.trace.as_ref().expect("sana trace.safetensors");

    let x: Tensor<B, 4> = read(&fx.io, "hidden_states").to_burn(&dev);
    let t: Tensor<B, 1> = read(&fx.io, "timestep").to_burn(&dev);
    let c: Tensor<B, 3> = read(&fx.io, "encoder_hidden_states").to_burn(&dev);
    let m: Tensor<B, 2> = read(&fx.io, "encoder_attention_mask").to_burn(&dev);
    let [_, _, h, w] = x.dims();

    let pe = model
        .pos_embed_table(h, w, &dev)
        .expect("SinCos is the default");
    check("pos_embed", pe, &read(trace, "pos_embed"), tol);

    let out = model.forward_traced(x.clone(), t.clone(), c.clone(), m.clone());
    check(
        "patch_embed",
        out.patch_embed,
        &read(trace, "patch_embed"),
        tol,
    );
    check(
        "time_embed.timestep",
        out.timestep,
        &read(trace, "time_embed.timestep"),
        tol,
    );
    check(
        "time_embed.embedded_timestep",
        out.embedded_timestep,
        &read(trace, "time_embed.embedded_timestep"),
        tol,
    );
    check(
        "caption_projection",
        out.caption_projection,
        &read(trace, "caption_projection"),
        tol,
    );
    check(
        "caption_norm",
        out.caption_norm,
        &read(trace, "caption_norm"),
        tol,
    );
    assert_eq!(out.blocks.len(), cfg.num_layers, "number of block outputs");
    for (i, blk) in out.blocks.into_iter().enumerate() {
        let key = format!("transformer_blocks.{i}");
        check(&key, blk, &read(trace, &key), tol);
    }
    check("norm_out", out.norm_out, &read(trace, "norm_out"), tol);
    check("proj_out", out.proj_out, &read(trace, "proj_out"), tol);
    check("sample", out.sample, &read(&fx.io, "sample"), tol);
    let plain = model.forward(x.clone(), t.clone(), c.clone(), m.clone());
    check("sample (forward)", plain, &read(&fx.io, "sample"), tol);

    // Feature tap after the first block equals the traced block output.
    let tap = model
        .features(x.clone(), t.clone(), c.clone(), m.clone(), 0)
        .expect("block 0 exists");
    check(
        "features(0)",
        tap,
        &read(trace, "transformer_blocks.0"),
        tol,
    );
    assert!(
        model
            .features(x.clone(), t.clone(), c.clone(), m.clone(), cfg.num_layers)
            .is_none(),
        "features past the last block must be None"
    );

    let no_pe = model.with_pos_embed(PosEmbed::None);
    let out = no_pe.forward_traced(x, t, c, m);
    check(
        "no_pe.patch_embed",
        out.patch_embed,
        &read(trace, "no_pe.patch_embed"),
        tol,
    );
    check(
        "sample_no_pe",
        out.sample,
        &read(&fx.io, "sample_no_pe"),
        tol,
    );
}

#[test]
fn parity_sana_unilip_e2e_velocity_bf16_pe() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e fixture") else {
        return;
    };
    let cfg: SanaConfig = serde_json::from_value(fx.config["upstream_config"]["dit"].clone())
        .expect("upstream_config.dit");
    let dev = Default::default();
    let vb = VarBuilder::<B>::new(fx.weights.clone(), &dev)
        .pp("model")
        .pp("dit");
    let model = SanaTransformer::load(&cfg, &vb)
        .expect("load model.dit")
        .with_pos_embed(PosEmbed::SinCosBf16);
    let trace = fx.trace.as_ref().expect("unilip_e2e trace.safetensors");

    let init = read(&fx.io, "t2i.init_latent");
    let [_, _, h, w] = <[usize; 4]>::try_from(init.shape.clone()).expect("4-D latent");
    let pe = model.pos_embed_table(h, w, &dev).expect("bf16 table");
    check(
        "dit.pos_embed (exact)",
        pe,
        &read(trace, "dit.pos_embed"),
        (0.0, 0.0),
    );

    let latent: Tensor<B, 4> = init.to_burn(&dev);
    let x = Tensor::cat(vec![latent.clone(), latent], 0);
    let proj: Tensor<B, 3> = read(trace, "t2i.projector").to_burn(&dev);
    let caption = Tensor::cat(vec![proj.clone().narrow(0, 1, 1), proj.narrow(0, 0, 1)], 0);
    let mask: Tensor<B, 2> = mask_f32(trace, "t2i.dit.encoder_attention_mask").to_burn(&dev);
    let (_, ts) = fx
        .io
        .read_i64("sampler.timesteps")
        .expect("sampler.timesteps");
    let t = Tensor::<B, 1>::from_data(TensorData::new(vec![ts[0] as f32; 2], [2]), &dev);

    let v = model.forward(x, t, caption, mask);
    let tol = fx.group_tolerance("dit_velocity_step0");
    check(
        "t2i.dit.velocity_step0",
        v,
        &read(trace, "t2i.dit.velocity_step0"),
        tol,
    );
}
