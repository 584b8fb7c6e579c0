//! Visual question answering about a scene. Questions are unambiguous by construction
//! and every answer is a single word.
//!
//! An object is described by its shape alone when that shape is unique in the scene,
//! else by colour and shape when that pair is unique; other objects are never asked
//! about. Position and relation questions are only asked when the objects are at least
//! `CLEAR_FRACTION` × resolution away from the decision boundary.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::scene::{Colour, Object, Scene, Shape};
use super::spec::Relation;
use super::words;

/// Distance from the decision boundary (fraction of the resolution) needed before a
/// position or relation question is asked.
const CLEAR_FRACTION: f32 = 0.1;
/// Probability that a count question asks about a shape or colour present in the scene.
const PRESENT_PROBABILITY: f64 = 0.75;

/// Kind of question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// "how many circles are there ?" / "how many red objects are there ?" → "two".
    Count,
    /// "what colour is the square ?" / "what colour are the squares ?" → "blue".
    Colour,
    /// "what shape is the red object ?" / "what shape are the red objects ?" → "circle".
    Shape,
    /// "is the red circle on the left or the right ?" → "left" (or top/bottom).
    Position,
    /// "is the star above the square ?" → "yes" / "no".
    Relation,
}

impl QuestionKind {
    /// Every kind, in the order of its documentation.
    pub const ALL: [QuestionKind; 5] = [
        QuestionKind::Count,
        QuestionKind::Colour,
        QuestionKind::Shape,
        QuestionKind::Position,
        QuestionKind::Relation,
    ];

    /// The kind's name (as in JSON and in `data.shapesworld`'s `questions` param).
    pub const fn name(self) -> &'static str {
        match self {
            QuestionKind::Count => "count",
            QuestionKind::Colour => "colour",
            QuestionKind::Shape => "shape",
            QuestionKind::Position => "position",
            QuestionKind::Relation => "relation",
        }
    }
}

/// A question with its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VqaQuestion {
    /// Kind of question.
    pub kind: QuestionKind,
    /// Question text (lowercase words, ending with a separate "?" token).
    pub question: String,
    /// One-word answer.
    pub answer: String,
}

/// Samples a question about `scene`: a random kind, falling back to other kinds when the
/// scene has nothing unambiguous to ask for it (counting always works).
pub fn sample_question(scene: &Scene, rng: &mut StdRng) -> VqaQuestion {
    let mut kinds = QuestionKind::ALL;
    kinds.shuffle(rng);
    kinds
        .into_iter()
        .find_map(|kind| ask(kind, scene, rng))
        .unwrap_or_else(|| count_question(scene, rng))
}

/// A question of `kind` about `scene`, or `None` when the scene has nothing unambiguous to ask
/// of that kind.
pub fn ask(kind: QuestionKind, scene: &Scene, rng: &mut StdRng) -> Option<VqaQuestion> {
    let (question, answer) = match kind {
        QuestionKind::Count => return Some(count_question(scene, rng)),
        QuestionKind::Colour => colour_question(scene, rng)?,
        QuestionKind::Shape => shape_question(scene, rng)?,
        QuestionKind::Position => position_question(scene, rng)?,
        QuestionKind::Relation => relation_question(scene, rng)?,
    };
    Some(VqaQuestion {
        kind,
        question,
        answer: answer.to_owned(),
    })
}

fn count_question(scene: &Scene, rng: &mut StdRng) -> VqaQuestion {
    let style = &scene.style;
    let (noun, count) = if rng.random_bool(0.5) {
        let shape =
            pick_attribute(scene, |o| o.shape, style.shapes(), rng).unwrap_or(Shape::Circle);
        let count = scene.objects.iter().filter(|o| o.shape == shape).count();
        (style.shape_word(shape, true).to_owned(), count)
    } else {
        let colour =
            pick_attribute(scene, |o| o.colour, style.colours(), rng).unwrap_or(Colour::Red);
        let count = scene.objects.iter().filter(|o| o.colour == colour).count();
        (format!("{} objects", style.colour_word(colour)), count)
    };
    VqaQuestion {
        kind: QuestionKind::Count,
        question: format!("how many {noun} are there ?"),
        answer: words::number_word(count).to_owned(),
    }
}

/// An attribute to count: usually one present in the scene, otherwise any of `all`.
fn pick_attribute<T: Copy>(
    scene: &Scene,
    of: fn(&Object) -> T,
    all: &[T],
    rng: &mut StdRng,
) -> Option<T> {
    if rng.random_bool(PRESENT_PROBABILITY) && !scene.objects.is_empty() {
        scene.objects.choose(rng).map(of)
    } else {
        all.choose(rng).copied()
    }
}

/// "what colour is the circle ?" / "what colour are the circles ?": asked about a shape whose
/// objects all have one colour (one object or a group), so single-group scenes get colour
/// questions too instead of falling back to counting.
fn colour_question(scene: &Scene, rng: &mut StdRng) -> Option<(String, &'static str)> {
    let group = uniform_group(scene, |o| o.shape, |o| o.colour, rng)?;
    let style = &scene.style;
    let question = match group.len() {
        1 => format!(
            "what colour is the {} ?",
            style.shape_word(group[0].shape, false)
        ),
        _ => format!(
            "what colour are the {} ?",
            style.shape_word(group[0].shape, true)
        ),
    };
    Some((question, style.colour_word(group[0].colour)))
}

/// "what shape is the red object ?" / "what shape are the red objects ?": asked about a colour
/// whose objects all have one shape.
fn shape_question(scene: &Scene, rng: &mut StdRng) -> Option<(String, &'static str)> {
    let group = uniform_group(scene, |o| o.colour, |o| o.shape, rng)?;
    let style = &scene.style;
    let colour = style.colour_word(group[0].colour);
    let question = match group.len() {
        1 => format!("what shape is the {colour} object ?"),
        _ => format!("what shape are the {colour} objects ?"),
    };
    Some((question, style.shape_word(group[0].shape, false)))
}

/// The objects sharing one value of `key`, picked among the keys whose objects all agree on
/// `asked` (the question about them has one answer).
fn uniform_group<'a, K: PartialEq + Copy, A: PartialEq>(
    scene: &'a Scene,
    key: fn(&Object) -> K,
    asked: fn(&Object) -> A,
    rng: &mut StdRng,
) -> Option<Vec<&'a Object>> {
    let mut keys: Vec<K> = Vec::new();
    for o in &scene.objects {
        if !keys.contains(&key(o)) {
            keys.push(key(o));
        }
    }
    let groups: Vec<Vec<&Object>> = keys
        .into_iter()
        .map(|k| scene.objects.iter().filter(|o| key(o) == k).collect())
        .filter(|g: &Vec<&Object>| g.iter().all(|o| asked(o) == asked(g[0])))
        .collect();
    groups.choose(rng).cloned()
}

/// Unambiguous description of `object`: its shape word when the shape is unique,
/// else colour and shape when that pair is unique.
fn describe(scene: &Scene, object: &Object) -> Option<String> {
    let style = &scene.style;
    let same_shape = scene
        .objects
        .iter()
        .filter(|o| o.shape == object.shape)
        .count();
    let same_pair = scene
        .objects
        .iter()
        .filter(|o| o.shape == object.shape && o.colour == object.colour)
        .count();
    match (same_shape, same_pair) {
        (1, _) => Some(style.shape_word(object.shape, false).to_owned()),
        (_, 1) => Some(format!(
            "{} {}",
            style.colour_word(object.colour),
            style.shape_word(object.shape, false)
        )),
        _ => None,
    }
}

fn position_question(scene: &Scene, rng: &mut StdRng) -> Option<(String, &'static str)> {
    let clear = CLEAR_FRACTION * scene.resolution as f32;
    let centre = scene.resolution as f32 / 2.0;
    let horizontal = rng.random_bool(0.5);
    let offset = |o: &Object| {
        if horizontal {
            o.cx - centre
        } else {
            o.cy - centre
        }
    };
    let candidates: Vec<(&Object, String)> = scene
        .objects
        .iter()
        .filter(|o| offset(o).abs() >= clear)
        .filter_map(|o| describe(scene, o).map(|d| (o, d)))
        .collect();
    let (object, description) = candidates.choose(rng)?;
    let answer = match (horizontal, offset(object) < 0.0) {
        (true, true) => "left",
        (true, false) => "right",
        (false, true) => "top",
        (false, false) => "bottom",
    };
    let options = if horizontal {
        "on the left or the right"
    } else {
        "at the top or the bottom"
    };
    Some((format!("is the {description} {options} ?"), answer))
}

fn relation_question(scene: &Scene, rng: &mut StdRng) -> Option<(String, &'static str)> {
    let clear = CLEAR_FRACTION * scene.resolution as f32;
    let relation = *Relation::ALL.choose(rng)?;
    let described: Vec<(&Object, String)> = scene
        .objects
        .iter()
        .filter_map(|o| describe(scene, o).map(|d| (o, d)))
        .collect();
    let centre = |i: usize| (described[i].0.cx, described[i].0.cy);
    let n = described.len();
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .filter(|&(i, j)| i != j && relation.separation(centre(i), centre(j)).abs() >= clear)
        .collect();
    let &(i, j) = pairs.choose(rng)?;
    let ((a, a_text), (b, b_text)) = (&described[i], &described[j]);
    let holds = relation.separation((a.cx, a.cy), (b.cx, b.cy)) > 0.0;
    let question = format!("is the {a_text} {} the {b_text} ?", relation.phrase());
    Some((question, if holds { "yes" } else { "no" }))
}
