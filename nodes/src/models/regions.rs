//! Regional prompting in cross-attention: parts of the canvas that read their own prompt.
//!
//! The DiT runs once per step on the whole canvas (its self-attention and convolutions see every
//! token, so objects stay whole across region edges); only what each image token *reads* in
//! cross-attention changes. The base prompt's tokens and every region's prompt tokens are
//! concatenated into one caption, and a per-image-token mask lets a token inside a region read
//! that region's prompt (and, with [`RegionPrompt::with_base`], the base prompt too), and a
//! token outside every region the base prompt alone. This is the attention mode of A1111's Regional
//! Prompter and of DenseDiffusion's masks, not ComfyUI's area conditioning, which runs the model
//! once per area and blends its outputs.

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::tokenizer::{generation_prompt, Tokenizer};
use super::unilip::{encode_prompts, Condition, ConditionMode, Result, Unilip, UnilipError};
use crate::shapesworld::{layout_spec, SceneSpec, Style};

/// A box on the canvas, as fractions of its width and height: columns `x0..x1`, rows `y0..y1`
/// (y down).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    /// Left edge, in `[0, 1]`.
    pub x0: f32,
    /// Top edge, in `[0, 1]`.
    pub y0: f32,
    /// Right edge, in `[0, 1]`, above `x0`.
    pub x1: f32,
    /// Bottom edge, in `[0, 1]`, above `y0`.
    pub y1: f32,
}

impl Area {
    /// The whole canvas.
    pub const FULL: Area = Area {
        x0: 0.0,
        y0: 0.0,
        x1: 1.0,
        y1: 1.0,
    };

    /// The box with edges `[x0, y0, x1, y1]`.
    pub fn from_edges([x0, y0, x1, y1]: [f32; 4]) -> Self {
        Self { x0, y0, x1, y1 }
    }

    /// An error naming the box unless `0 ≤ x0 < x1 ≤ 1` and `0 ≤ y0 < y1 ≤ 1`.
    pub fn validate(&self) -> Result<()> {
        let ok =
            |lo: f32, hi: f32| (0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo < hi;
        if ok(self.x0, self.x1) && ok(self.y0, self.y1) {
            Ok(())
        } else {
            Err(UnilipError::Input(format!(
                "region x {}..{}, y {}..{}: each must be a non-empty range within 0..1",
                self.x0, self.x1, self.y0, self.y1
            )))
        }
    }

    /// Which cells of an `h × w` token grid the box covers (its centre lies inside), row-major.
    pub fn covers(&self, grid: [usize; 2]) -> Vec<bool> {
        let [h, w] = grid;
        let inside = |lo: f32, hi: f32, cell: usize, cells: usize| {
            let centre = (cell as f32 + 0.5) / cells as f32;
            lo <= centre && centre < hi
        };
        (0..h)
            .flat_map(|r| (0..w).map(move |c| (r, c)))
            .map(|(r, c)| inside(self.y0, self.y1, r, h) && inside(self.x0, self.x1, c, w))
            .collect()
    }
}

/// A DiT caption `[n, l, c]` with its per-image-token mask `[n, h·w, l]` (or `[n, 1, l]`, the same
/// for every image token; 1 = attend).
pub type MaskedCaption<B> = (Tensor<B, 3>, Tensor<B, 3>);

/// `rows` stacked along the batch, each padded along the sequence to the longest (zero
/// embeddings, mask 0). Every row's mask must have the same middle dimension (1, or one per
/// image token).
pub fn stack_captions<B: Backend>(rows: Vec<MaskedCaption<B>>) -> MaskedCaption<B> {
    let len = rows.iter().map(|(c, _)| c.dims()[1]).max().unwrap_or(0);
    let (captions, masks): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .map(|(c, m)| {
            let ([b, l, channels], [_, tokens, _]) = (c.dims(), m.dims());
            if l == len {
                return (c, m);
            }
            let dev = c.device();
            (
                Tensor::cat(vec![c, Tensor::zeros([b, len - l, channels], &dev)], 1),
                Tensor::cat(vec![m, Tensor::zeros([b, tokens, len - l], &dev)], 2),
            )
        })
        .unzip();
    (Tensor::cat(captions, 0), Tensor::cat(masks, 0))
}

/// A prompt that drives one part of the canvas.
#[derive(Debug, Clone)]
pub struct RegionPrompt<B: Backend> {
    /// Its condition: one row (shared by every sampled latent) or one per latent.
    pub cond: Condition<B>,
    /// Where it applies: one box shared by every sampled latent, or one per latent (candidates
    /// sampled under different layouts).
    pub areas: Vec<Area>,
    /// Whether the tokens of its box also read the base prompt (the whole caption) beside its
    /// own; without it they read its prompt alone (and those of other regions covering them).
    pub with_base: bool,
}

/// The positive caption for `base` (`n` rows) and `regions` on an `h × w` token grid: the base
/// and every region's embeddings concatenated along the sequence, `[n, l, c]`, with the
/// per-image-token mask `[n, h·w, l]` (1 = attend) that
/// [`super::sana::SanaTransformer::forward_token_masked`] takes. A token reads the prompt of
/// every region covering it, and the base prompt unless one of those regions is without it.
pub fn regional_caption<B: Backend>(
    base: &Condition<B>,
    regions: &[RegionPrompt<B>],
    grid: [usize; 2],
) -> Result<MaskedCaption<B>> {
    let n = base.batch();
    let tokens = grid[0] * grid[1];
    let dev = base.embeds.device();
    // Per region, per latent row: which tokens its box covers.
    let covered: Vec<Vec<Vec<bool>>> = regions
        .iter()
        .map(|r| {
            let rows: Vec<Vec<bool>> = r
                .areas
                .iter()
                .map(|a| a.validate().map(|()| a.covers(grid)))
                .collect::<Result<_>>()?;
            match rows.len() {
                1 => Ok(vec![rows[0].clone(); n]),
                k if k == n => Ok(rows),
                k => Err(UnilipError::Input(format!(
                    "a region with {k} boxes (one per candidate layout) for {n} latents: give \
                     one box, or one per latent"
                ))),
            }
        })
        .collect::<Result<_>>()?;
    let base_reads: Vec<Vec<bool>> = (0..n)
        .map(|row| {
            (0..tokens)
                .map(|t| {
                    regions
                        .iter()
                        .zip(&covered)
                        .all(|(r, c)| r.with_base || !c[row][t])
                })
                .collect()
        })
        .collect();
    let mut embeds = vec![base.embeds.clone()];
    let mut masks = vec![token_mask(&base.mask, &base_reads, &dev)];
    for (region, covered) in regions.iter().zip(&covered) {
        let cond = region.cond.broadcast(n)?;
        embeds.push(cond.embeds);
        masks.push(token_mask(&cond.mask, covered, &dev));
    }
    Ok((Tensor::cat(embeds, 1), Tensor::cat(masks, 2)))
}

/// Where a ShapesWorld caption's regions go ([`caption_regions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionLayout {
    /// A caption relating two groups gets each group's own caption over the half of the canvas
    /// the relation puts it in ([`SceneSpec::group_regions`]); a one-group caption gets none.
    Groups,
    /// Every caption gets one region per object: a layout of the caption drawn by ShapesWorld's
    /// own layout sampler, each object's caption ("a small red circle") over its box
    /// ([`crate::shapesworld::Scene::object_regions`]); the count, sizes and places are the plan's.
    Objects,
}

impl RegionLayout {
    /// Both layouts, as [`RegionLayout::name`] spells them.
    pub const NAMES: [&'static str; 2] = ["groups", "objects"];

    /// `groups` or `objects`.
    pub fn name(self) -> &'static str {
        match self {
            RegionLayout::Groups => "groups",
            RegionLayout::Objects => "objects",
        }
    }

    /// The layout named `name` ([`RegionLayout::NAMES`]).
    pub fn from_name(name: &str) -> Option<Self> {
        [RegionLayout::Groups, RegionLayout::Objects]
            .into_iter()
            .find(|l| l.name() == name)
    }

    /// The captions and boxes (`[x0, y0, x1, y1]` fractions) of `spec`'s regions in `style`'s
    /// words; [`RegionLayout::Objects`] lays the spec out on a `resolution`-pixel canvas with
    /// the layout sampler seeded by `seed`.
    pub fn plan(
        self,
        spec: &SceneSpec,
        style: &Style,
        resolution: u32,
        seed: u64,
    ) -> Result<Vec<(String, [f32; 4])>> {
        match self {
            RegionLayout::Groups => Ok(spec.group_regions(style)),
            RegionLayout::Objects => {
                let mut rng = StdRng::seed_from_u64(seed);
                layout_spec(spec, resolution, *style, &mut rng)
                    .map(|scene| scene.object_regions())
                    .map_err(|e| UnilipError::Input(format!("`{}`: {e}", spec.caption_in(style))))
            }
        }
    }
}

/// How [`caption_regions`] plans: where the regions go, the layout sampler's seed and how many
/// layouts ([`RegionLayout::Objects`]), and whether each region's tokens also read the base
/// prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionPlan {
    /// Where the regions go.
    pub layout: RegionLayout,
    /// Seed of the (first) object layout; unused for groups.
    pub seed: u64,
    /// Object layouts drawn (seeds `seed`, `seed + 1`, …), one per sampled latent, so that
    /// candidates sampled together each get their own; 1 shares one layout. Groups have one.
    pub layouts: usize,
    /// See [`RegionPrompt::with_base`].
    pub with_base: bool,
}

/// Regional prompts planned from a ShapesWorld caption as `plan` says
/// ([`RegionLayout::plan`] on the model's canvas), each region's caption (in `style`'s words)
/// conditioned as a generation prompt through `model`'s MLLM and connector in `mode`. The
/// caption grammar and ShapesWorld's layout sampler are the layout planner that an LLM is in
/// LLM-grounded diffusion.
pub fn caption_regions<B: Backend>(
    model: &Unilip<B>,
    tok: &Tokenizer,
    spec: &SceneSpec,
    style: &Style,
    mode: ConditionMode,
    plan: RegionPlan,
    device: &B::Device,
) -> Result<Vec<RegionPrompt<B>>> {
    let resolution = model.config.vision.vision_config.image_size.hw()[0] as u32;
    let layouts = match plan.layout {
        RegionLayout::Groups => 1,
        RegionLayout::Objects => plan.layouts.max(1),
    };
    let plans: Vec<Vec<(String, [f32; 4])>> = (0..layouts as u64)
        .map(|k| {
            plan.layout
                .plan(spec, style, resolution, plan.seed.wrapping_add(k))
        })
        .collect::<Result<_>>()?;
    // Every layout of one spec has as many regions (its groups, or its objects).
    (0..plans[0].len())
        .map(|j| {
            let prompts: Vec<String> = plans.iter().map(|p| generation_prompt(&p[j].0)).collect();
            let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
            let (ids, mask) = encode_prompts::<B>(tok, &texts, device)?;
            Ok(RegionPrompt {
                cond: model.condition(ids, mask, None, mode)?,
                areas: plans.iter().map(|p| Area::from_edges(p[j].1)).collect(),
                with_base: plan.with_base,
            })
        })
        .collect()
}

/// `[n, tokens, l]`: the caption mask `[n, l]` on the image tokens that read it, 0 elsewhere.
/// `reads` holds one row of per-token flags shared by every caption row, or one row per caption
/// row.
pub fn token_mask<B: Backend>(
    mask: &Tensor<B, 2, Int>,
    reads: &[Vec<bool>],
    dev: &B::Device,
) -> Tensor<B, 3> {
    let tokens = reads.first().map_or(0, Vec::len);
    let values: Vec<f32> = reads
        .iter()
        .flatten()
        .map(|&r| f32::from(u8::from(r)))
        .collect();
    let reads =
        Tensor::<B, 1>::from_floats(values.as_slice(), dev).reshape([reads.len(), tokens, 1]);
    mask.clone().float().unsqueeze_dim::<3>(1) * reads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{device, B as T};

    fn cond(rows: usize, len: usize, fill: f32) -> Condition<T> {
        let dev = device();
        Condition {
            embeds: Tensor::full([rows, len, 2], fill, &dev),
            mask: Tensor::ones([rows, len], &dev),
        }
    }

    #[test]
    fn half_areas_cover_their_columns() {
        let left = Area {
            x1: 0.5,
            ..Area::FULL
        };
        assert_eq!(
            left.covers([2, 4]),
            vec![true, true, false, false, true, true, false, false]
        );
        assert!(Area {
            x0: 0.5,
            x1: 0.5,
            ..Area::FULL
        }
        .validate()
        .is_err());
        assert!(Area {
            y1: 1.5,
            ..Area::FULL
        }
        .validate()
        .is_err());
    }

    #[test]
    fn a_region_with_one_box_per_latent_places_each_latent_on_its_own() {
        let base = cond(2, 1, 0.0);
        let half = |x0, x1| Area {
            x0,
            x1,
            ..Area::FULL
        };
        let region = |areas| RegionPrompt {
            cond: cond(1, 1, 1.0),
            areas,
            with_base: false,
        };
        let (_, mask) = regional_caption(
            &base,
            &[region(vec![half(0.0, 0.5), half(0.5, 1.0)])],
            [1, 2],
        )
        .unwrap();
        let mask: Vec<f32> = mask.into_data().to_vec().unwrap();
        // Row 0: token 0 reads the region, token 1 the base; row 1 the other way round.
        assert_eq!(mask, vec![0., 1., 1., 0., 1., 0., 0., 1.]);
        let err = regional_caption(&base, &[region(vec![Area::FULL; 3])], [1, 2])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("3 boxes") && err.contains("2 latents"),
            "{err}"
        );
    }

    #[test]
    fn object_layout_boxes_each_object_inside_its_groups_half() {
        let style = Style::default();
        let spec = SceneSpec::parse("two red circles left of a blue square").unwrap();
        let plan = |seed| RegionLayout::Objects.plan(&spec, &style, 64, seed).unwrap();
        let regions = plan(5);
        assert_eq!(regions.len(), 3);
        for (i, (caption, [x0, y0, x1, y1])) in regions.iter().enumerate() {
            let object = SceneSpec::parse(caption).unwrap();
            assert_eq!(object.object_count(), 1, "{caption}");
            assert!(object.first.size.is_some(), "{caption}");
            let group = if i < 2 { spec.first } else { spec.groups()[1] };
            assert_eq!(
                (object.first.colour, object.first.shape),
                (group.colour, group.shape)
            );
            // A small object's box is about a sixth of the canvas; each lies in its half.
            assert!(x1 - x0 > 0.15 && x1 - x0 < 0.45 && y1 > y0, "{caption}");
            assert!(if i < 2 { *x1 <= 0.5 } else { *x0 >= 0.5 }, "{caption}");
        }
        assert_eq!(plan(5), regions);
        assert_ne!(plan(6), regions);
        assert!(RegionLayout::Groups
            .plan(&SceneSpec::parse("two red circles").unwrap(), &style, 64, 5)
            .unwrap()
            .is_empty());
        let crowded =
            SceneSpec::parse("four large red circles left of four large blue squares").unwrap();
        let err = RegionLayout::Objects
            .plan(&crowded, &style, 64, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("four large red circles") && err.contains("8 objects"),
            "{err}"
        );
    }

    #[test]
    fn each_token_reads_its_regions_prompt_and_the_base_only_outside_regions() {
        let base = cond(2, 3, 0.0);
        let left = |with_base| RegionPrompt {
            cond: cond(1, 2, 1.0),
            areas: vec![Area {
                x1: 0.5,
                ..Area::FULL
            }],
            with_base,
        };
        let (caption, mask) = regional_caption(&base, &[left(false)], [1, 2]).unwrap();
        assert_eq!(caption.dims(), [2, 5, 2]);
        let values: Vec<f32> = caption.narrow(0, 1, 1).into_data().to_vec().unwrap();
        assert_eq!(values, vec![0., 0., 0., 0., 0., 0., 1., 1., 1., 1.]);
        let mask: Vec<f32> = mask.narrow(0, 1, 1).into_data().to_vec().unwrap();
        // Token 0 (left) reads the region's two tokens; token 1 the base's three.
        assert_eq!(mask, vec![0., 0., 0., 1., 1., 1., 1., 1., 0., 0.]);
        let (_, mask) = regional_caption(&base, &[left(true)], [1, 2]).unwrap();
        let mask: Vec<f32> = mask.narrow(0, 0, 1).into_data().to_vec().unwrap();
        assert_eq!(mask, vec![1., 1., 1., 1., 1., 1., 1., 1., 0., 0.]);
        let wrong_rows = RegionPrompt {
            cond: cond(3, 2, 1.0),
            ..left(false)
        };
        assert!(regional_caption(&base, &[wrong_rows], [1, 2]).is_err());
        let outside = RegionPrompt {
            areas: vec![Area {
                x0: 0.5,
                x1: 0.2,
                ..Area::FULL
            }],
            ..left(false)
        };
        assert!(regional_caption(&base, &[outside], [1, 2]).is_err());
    }
}
