//! Deterministic evaluation: GenEval-style prompt checks, edit checks and VQA answer
//! matching, all on top of [`detect`].

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::detect::{detect, Detection};
use super::edit::{EditItem, EditKind, ObjectRef};
use super::scene::{Object, Scene};
use super::spec::{GroupSpec, SceneSpec};
use super::style::Style;
use super::words;

/// Minimum centroid separation for a relation to hold, as a fraction of the resolution.
const RELATION_MARGIN: f32 = 0.05;
/// How far an object may drift and still count as "in place", as a fraction of the
/// resolution.
const POSITION_TOLERANCE: f32 = 0.08;
/// Smallest displacement along the requested direction that counts as a move, as a
/// fraction of the resolution.
const MIN_MOVE: f32 = 0.1;

/// Outcome of checking an image against a prompt spec.
///
/// Checks: for every group "present" (at least one object with its colour, shape and —
/// when named — size) and "exact count"; for two groups "relation holds" (group
/// centroids separated by at least 0.05 × resolution along the relation's axis); and
/// "no extra objects" (total object count equals the spec's). `correct` is GenEval's
/// per-prompt binary score: every check passed. `colours` is a looser, separate signal of
/// prompt following: every group's colour is on some object, whatever its shape, size or count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenEvalResult {
    /// All checks passed.
    pub correct: bool,
    /// Number of checks passed.
    pub checks_passed: u32,
    /// Number of checks made (3 for one group, 6 for two).
    pub checks_total: u32,
    /// Every requested colour is on at least one object (not one of the checks).
    pub colours: bool,
    /// Objects found in the image, whatever they are.
    pub objects_found: u32,
    /// Objects the prompt asks for.
    pub objects_asked: u32,
}

impl GenEvalResult {
    /// Fraction of checks passed, in [0, 1].
    pub fn fraction(&self) -> f32 {
        self.checks_passed as f32 / self.checks_total.max(1) as f32
    }
}

/// Scores a generated image against the spec of its prompt (see [`GenEvalResult`]).
pub fn geneval_score(image: &RgbImage, spec: &SceneSpec, style: &Style) -> GenEvalResult {
    let objects = detected_objects(image, style);
    geneval_objects(&objects, spec, image.width().min(image.height()))
}

/// The GenEval checks of [`geneval_score`] applied to known objects (e.g. a scene's
/// ground truth) at `resolution`.
pub fn geneval_objects(objects: &[Object], spec: &SceneSpec, resolution: u32) -> GenEvalResult {
    let members = |g: &GroupSpec| -> Vec<&Object> {
        objects
            .iter()
            .filter(|o| g.matches(o.shape, o.colour, o.size))
            .collect()
    };
    let mut checks = Vec::new();
    for group in spec.groups() {
        let found = members(&group).len();
        checks.push(found > 0);
        checks.push(found == group.count);
    }
    if let Some(related) = spec.second {
        let a = centroid(&members(&spec.first));
        let b = centroid(&members(&related.group));
        let margin = RELATION_MARGIN * resolution as f32;
        checks.push(
            matches!((a, b), (Some(a), Some(b)) if related.relation.separation(a, b) >= margin),
        );
    }
    checks.push(objects.len() == spec.object_count());
    let colours = spec
        .groups()
        .into_iter()
        .all(|g| objects.iter().any(|o| o.colour == g.colour));
    let passed = checks.iter().filter(|c| **c).count() as u32;
    GenEvalResult {
        correct: checks.iter().all(|c| *c),
        checks_passed: passed,
        checks_total: checks.len() as u32,
        colours,
        objects_found: objects.len() as u32,
        objects_asked: spec.object_count() as u32,
    }
}

/// Mean centre of `objects`, `None` when empty.
fn centroid(objects: &[&Object]) -> Option<(f32, f32)> {
    let n = objects.len() as f32;
    (!objects.is_empty()).then(|| {
        let (sx, sy) = objects
            .iter()
            .fold((0.0, 0.0), |(sx, sy), o| (sx + o.cx, sy + o.cy));
        (sx / n, sy / n)
    })
}

/// The objects [`detect`] finds in `image`, as scene objects.
pub fn detected_objects(image: &RgbImage, style: &Style) -> Vec<Object> {
    detect(image, style).iter().map(Detection::object).collect()
}

/// How one ground-truth object of a scene came back in an image (e.g. a reconstruction).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ObjectRecovery {
    /// The ground-truth object.
    pub object: Object,
    /// An object of the same colour was detected within 0.08 × resolution of its centre.
    pub found: bool,
    /// That detection also has the object's shape.
    pub shape_kept: bool,
    /// That detection also has the object's size class.
    pub size_kept: bool,
}

/// Matches every object of `truth` to the nearest not yet matched object of `detected` (found
/// by [`detect`] in an image of `resolution`) of the same colour within 0.08 × resolution (in
/// `truth` order) and reports whether its shape and size survived. Unlike [`geneval_score`],
/// which checks a caption, this says *which* objects an image lost or changed — for a
/// reconstruction, what the decoder drops.
pub fn recover_objects(
    truth: &[Object],
    detected: &[Object],
    resolution: u32,
) -> Vec<ObjectRecovery> {
    let tolerance = POSITION_TOLERANCE * resolution as f32;
    let mut unused = detected.to_vec();
    truth
        .iter()
        .map(|object| {
            let distance = |o: &Object| (o.cx - object.cx).hypot(o.cy - object.cy);
            let nearest = unused
                .iter()
                .enumerate()
                .filter(|(_, o)| o.colour == object.colour && distance(o) <= tolerance)
                .min_by(|(_, a), (_, b)| distance(a).total_cmp(&distance(b)))
                .map(|(index, _)| index);
            let matched = nearest.map(|index| unused.swap_remove(index));
            ObjectRecovery {
                object: *object,
                found: matched.is_some(),
                shape_kept: matched.is_some_and(|o| o.shape == object.shape),
                size_kept: matched.is_some_and(|o| o.size == object.size),
            }
        })
        .collect()
}

/// Outcome of checking an edited image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EditResult {
    /// The requested change is visible in the edited image.
    pub change_made: bool,
    /// Every object the edit does not touch is still there (same colour, shape, size,
    /// centre within 0.08 × resolution) and the object count changed only as requested.
    pub preserved: bool,
    /// 1 when both hold, 0.5 for a change that damaged the rest, 0 without the change.
    pub score: f32,
}

/// Scores `edited` as the result of applying `item`'s instruction to `source`.
///
/// Objects are detected in both images. The positions of the referenced objects come
/// from `item.source`. Change criteria: recolour — an object of the new colour and same
/// shape near the old position and one fewer of the old pair; move — the object
/// displaced by at least 0.1 × resolution in the requested direction; add — one more of
/// the pair; remove — one fewer of the pair; resize — the object of the new size near
/// its old position; swap — each object near the other's old position.
pub fn edit_score(
    source: &RgbImage,
    edited: &RgbImage,
    item: &EditItem,
    style: &Style,
) -> EditResult {
    let resolution = source.width().min(source.height());
    let before = detected_objects(source, style);
    let after = detected_objects(edited, style);
    let tolerance = POSITION_TOLERANCE * resolution as f32;
    let change_made = change_made(&item.kind, &item.source, &before, &after, tolerance);
    let preserved = preserved(&item.kind, &before, &after, tolerance);
    let score = match (change_made, preserved) {
        (true, true) => 1.0,
        (true, false) => 0.5,
        (false, _) => 0.0,
    };
    EditResult {
        change_made,
        preserved,
        score,
    }
}

fn count(objects: &[Object], reference: &ObjectRef) -> usize {
    objects.iter().filter(|o| reference.matches(o)).count()
}

fn near(object: &Object, at: &Object, tolerance: f32) -> bool {
    (object.cx - at.cx).hypot(object.cy - at.cy) <= tolerance
}

fn change_made(
    kind: &EditKind,
    source: &Scene,
    before: &[Object],
    after: &[Object],
    tolerance: f32,
) -> bool {
    let resolution = source.resolution as f32;
    let found = |r: &ObjectRef| r.find(source);
    match kind {
        EditKind::Recolour { object, to } => found(object).is_some_and(|at| {
            let new = ObjectRef {
                colour: *to,
                shape: object.shape,
            };
            after
                .iter()
                .any(|o| new.matches(o) && near(o, at, tolerance))
                && count(after, object) + 1 == count(before, object)
        }),
        EditKind::Move { object, direction } => found(object).is_some_and(|at| {
            let (ux, uy) = direction.unit();
            after.iter().any(|o| {
                object.matches(o)
                    && (o.cx - at.cx) * ux + (o.cy - at.cy) * uy >= MIN_MOVE * resolution
            })
        }),
        EditKind::Add { object } => count(after, object) == count(before, object) + 1,
        EditKind::Remove { object } => count(after, object) + 1 == count(before, object),
        EditKind::Resize { object, to } => found(object).is_some_and(|at| {
            after
                .iter()
                .any(|o| object.matches(o) && o.size == *to && near(o, at, tolerance))
        }),
        EditKind::Swap { first, second } => match (found(first), found(second)) {
            (Some(a), Some(b)) => {
                after
                    .iter()
                    .any(|o| first.matches(o) && near(o, b, tolerance))
                    && after
                        .iter()
                        .any(|o| second.matches(o) && near(o, a, tolerance))
            }
            _ => false,
        },
    }
}

fn preserved(kind: &EditKind, before: &[Object], after: &[Object], tolerance: f32) -> bool {
    let touched = kind.touched();
    let expected = before.len() as isize + kind.count_delta();
    let mut unused: Vec<&Object> = after.iter().collect();
    let untouched = before
        .iter()
        .filter(|o| !touched.iter().any(|r| r.matches(o)));
    let all_kept = untouched.into_iter().all(|kept| {
        let same = |o: &&Object| {
            (o.shape, o.colour, o.size) == (kept.shape, kept.colour, kept.size)
                && near(o, kept, tolerance)
        };
        match unused.iter().position(same) {
            Some(index) => {
                unused.swap_remove(index);
                true
            }
            None => false,
        }
    });
    all_kept && after.len() as isize == expected
}

/// Whether a predicted VQA answer matches the reference: both are lowercased, stripped of
/// punctuation and extra whitespace, and numerals are read as number words ("2" ==
/// "two").
pub fn vqa_answer_correct(prediction: &str, answer: &str) -> bool {
    normalise_answer(prediction) == normalise_answer(answer)
}

fn normalise_answer(text: &str) -> String {
    super::spec::words_only(text)
        .split_whitespace()
        .map(|w| match w.parse::<usize>() {
            Ok(n) => words::number_word(n),
            Err(_) => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}
