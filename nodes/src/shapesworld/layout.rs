//! Object placement: spec-driven layouts (caption scenes) and free random layouts
//! (edit scenes). Placement is rejection sampling of bounding circles.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::RngExt;
use thiserror::Error;

use super::scene::{object_gap, Colour, Object, Scene, Shape, Size};
use super::spec::{GroupSpec, Relation, SceneSpec};
use super::style::Style;

/// Random positions tried for one object before a layout attempt is abandoned.
const PLACEMENT_TRIES: usize = 200;
/// Whole-layout attempts before [`layout_spec`] gives up.
const LAYOUT_TRIES: usize = 50;
/// Pixels kept free between bounding circles and the image border.
const BORDER: f32 = 1.0;

/// A spec whose objects do not fit into the image without overlapping.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("could not place {objects} objects without overlap at resolution {resolution}")]
pub struct LayoutError {
    /// Objects requested.
    pub objects: usize,
    /// Image side in pixels.
    pub resolution: u32,
}

/// Axis-aligned area that an object's bounding circle must stay inside.
#[derive(Debug, Clone, Copy)]
struct Region {
    x0: f32,
    x1: f32,
    y0: f32,
    y1: f32,
}

impl Region {
    fn full(resolution: u32) -> Region {
        let hi = resolution as f32 - BORDER;
        Region {
            x0: BORDER,
            x1: hi,
            y0: BORDER,
            y1: hi,
        }
    }

    /// Regions of the first and second group so that every first-group object
    /// satisfies `relation` against every second-group object, with at least the
    /// object gap between the two halves.
    fn halves(relation: Relation, resolution: u32) -> (Region, Region) {
        let full = Region::full(resolution);
        let mid = resolution as f32 / 2.0;
        let half_gap = object_gap(resolution) / 2.0;
        let low_x = Region {
            x1: mid - half_gap,
            ..full
        };
        let high_x = Region {
            x0: mid + half_gap,
            ..full
        };
        let low_y = Region {
            y1: mid - half_gap,
            ..full
        };
        let high_y = Region {
            y0: mid + half_gap,
            ..full
        };
        match relation {
            Relation::LeftOf => (low_x, high_x),
            Relation::RightOf => (high_x, low_x),
            Relation::Above => (low_y, high_y),
            Relation::Below => (high_y, low_y),
        }
    }

    /// Uniform random centre keeping a circle of `radius` inside, if it fits at all.
    fn sample_centre(&self, radius: f32, rng: &mut StdRng) -> Option<(f32, f32)> {
        let (lo_x, hi_x) = (self.x0 + radius, self.x1 - radius);
        let (lo_y, hi_y) = (self.y0 + radius, self.y1 - radius);
        (lo_x <= hi_x && lo_y <= hi_y).then(|| {
            (
                lo_x + rng.random::<f32>() * (hi_x - lo_x),
                lo_y + rng.random::<f32>() * (hi_y - lo_y),
            )
        })
    }
}

/// Places a copy of `proto` at a random free position in `region`; returns whether
/// it succeeded.
fn place(
    objects: &mut Vec<Object>,
    proto: Object,
    region: Region,
    resolution: u32,
    rng: &mut StdRng,
) -> bool {
    let radius = proto.bounding_radius(resolution);
    for _ in 0..PLACEMENT_TRIES {
        let Some((cx, cy)) = region.sample_centre(radius, rng) else {
            return false;
        };
        let candidate = Object { cx, cy, ..proto };
        if objects
            .iter()
            .all(|o| o.is_clear_of(&candidate, resolution))
        {
            objects.push(candidate);
            return true;
        }
    }
    false
}

/// Places a random object of the given colour and shape at a free position anywhere in
/// the scene; returns whether it succeeded.
pub(super) fn place_anywhere(
    scene: &mut Scene,
    colour: Colour,
    shape: Shape,
    rng: &mut StdRng,
) -> bool {
    let size = *Size::ALL.choose(rng).unwrap_or(&Size::Small);
    let proto = Object {
        shape,
        colour,
        size,
        cx: 0.0,
        cy: 0.0,
    };
    let region = Region::full(scene.resolution);
    place(&mut scene.objects, proto, region, scene.resolution, rng)
}

/// Size used for a group: the named one, else one random size for the whole group
/// (always small for a three-object group sharing the image with another group).
fn group_size(group: &GroupSpec, shares_image: bool, rng: &mut StdRng) -> Size {
    match group.size {
        Some(size) => size,
        None if shares_image && group.count >= 3 => Size::Small,
        None => *Size::ALL.choose(rng).unwrap_or(&Size::Small),
    }
}

/// One attempt at placing all objects of `spec`.
fn try_layout(spec: &SceneSpec, resolution: u32, rng: &mut StdRng) -> Option<Vec<Object>> {
    let placements: Vec<(GroupSpec, Region)> = match spec.second {
        None => vec![(spec.first, Region::full(resolution))],
        Some(related) => {
            let (a, b) = Region::halves(related.relation, resolution);
            vec![(spec.first, a), (related.group, b)]
        }
    };
    let shares_image = placements.len() > 1;
    let mut objects = Vec::with_capacity(spec.object_count());
    for (group, region) in placements {
        let size = group_size(&group, shares_image, rng);
        let proto = Object {
            shape: group.shape,
            colour: group.colour,
            size,
            cx: 0.0,
            cy: 0.0,
        };
        for _ in 0..group.count {
            if !place(&mut objects, proto, region, resolution, rng) {
                return None;
            }
        }
    }
    Some(objects)
}

/// Lays out a scene realising `spec` exactly: each group gets its count of identical
/// objects (one size per group); with a relation the first group lies entirely in the
/// corresponding half of the image and the second group in the other half.
pub fn layout_spec(
    spec: &SceneSpec,
    resolution: u32,
    style: Style,
    rng: &mut StdRng,
) -> Result<Scene, LayoutError> {
    (0..LAYOUT_TRIES)
        .find_map(|_| try_layout(spec, resolution, rng))
        .map(|objects| Scene {
            objects,
            resolution,
            style,
        })
        .ok_or(LayoutError {
            objects: spec.object_count(),
            resolution,
        })
}

/// A free random scene of up to `count` objects whose (colour, shape) pairs are all
/// distinct, each of random size, placed anywhere without overlap. Objects that do not
/// fit are left out, so the scene may have fewer objects (never none when
/// `count > 0`: the first object always fits an empty image).
pub(super) fn random_scene(resolution: u32, style: Style, count: usize, rng: &mut StdRng) -> Scene {
    let mut pairs: Vec<(Colour, Shape)> = style
        .colours()
        .iter()
        .flat_map(|c| style.shapes().iter().map(move |s| (*c, *s)))
        .collect();
    pairs.shuffle(rng);
    let mut scene = Scene {
        objects: Vec::with_capacity(count),
        resolution,
        style,
    };
    for (colour, shape) in pairs.into_iter().take(count) {
        place_anywhere(&mut scene, colour, shape, rng);
    }
    scene
}
