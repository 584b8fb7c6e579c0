//! Edit triplets: a source scene, an instruction and the target scene.
//!
//! Source scenes are free random layouts of 1–4 objects whose (colour, shape) pairs are
//! all distinct, so "the red circle" always names exactly one object. Only the edited
//! object(s) differ between source and target.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::layout;
use super::scene::{Colour, Object, Scene, Shape, Size};
use super::spec::{words_only, ParseError, Parser};
use super::style::{self, Style};
use super::words;

/// Shortest move, as a fraction of the resolution.
const MIN_SHIFT: f32 = 0.2;
/// Longest move, as a fraction of the resolution.
const MAX_SHIFT: f32 = 0.35;

/// Direction of a move edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Towards smaller x.
    Left,
    /// Towards larger x.
    Right,
    /// Towards smaller y.
    Up,
    /// Towards larger y.
    Down,
}

impl Direction {
    /// All directions.
    pub const ALL: [Direction; 4] = [
        Direction::Left,
        Direction::Right,
        Direction::Up,
        Direction::Down,
    ];

    /// Unit vector in image coordinates (y down).
    pub fn unit(self) -> (f32, f32) {
        match self {
            Direction::Left => (-1.0, 0.0),
            Direction::Right => (1.0, 0.0),
            Direction::Up => (0.0, -1.0),
            Direction::Down => (0.0, 1.0),
        }
    }

    /// Words used in instructions ("to the left", "up", ...).
    pub fn phrase(self) -> &'static str {
        match self {
            Direction::Left => "to the left",
            Direction::Right => "to the right",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// Names an object by colour and shape (unique within edit source scenes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Colour slot.
    pub colour: Colour,
    /// Shape.
    pub shape: Shape,
}

impl ObjectRef {
    /// Reference to `object`.
    pub fn of(object: &Object) -> ObjectRef {
        ObjectRef {
            colour: object.colour,
            shape: object.shape,
        }
    }

    /// Whether `object` has this colour and shape.
    pub fn matches(&self, object: &Object) -> bool {
        object.colour == self.colour && object.shape == self.shape
    }

    /// The first object of `scene` this refers to.
    pub fn find<'a>(&self, scene: &'a Scene) -> Option<&'a Object> {
        scene.objects.iter().find(|o| self.matches(o))
    }

    /// Its one-object caption ("a red circle") and the same caption in every other colour of
    /// `style`, what locates it ([`crate::models::locate`]).
    pub fn caption_and_contrasts(&self, style: &Style) -> (String, Vec<String>) {
        let caption = ObjectCaption {
            size: None,
            colour: self.colour,
            shape: self.shape,
        };
        (
            caption.phrase(self.colour, style),
            caption.recoloured(style),
        )
    }

    /// "red circle" in `style`'s words.
    pub fn phrase(&self, style: &Style) -> String {
        format!(
            "{} {}",
            style.colour_word(self.colour),
            style.shape_word(self.shape, false)
        )
    }
}

/// A caption before and after an edit ([`EditKind::prompt_pair`]); `None` is the
/// unconditional prompt.
pub type PromptPair = (Option<String>, Option<String>);

/// One object as an edit's prompt names it ("a large red circle").
#[derive(Debug, Clone, Copy)]
struct ObjectCaption {
    size: Option<Size>,
    colour: Colour,
    shape: Shape,
}

impl ObjectCaption {
    /// The caption with the object in `colour`.
    fn phrase(self, colour: Colour, style: &Style) -> String {
        words::group_phrase(1, self.size, colour, self.shape, style)
    }

    /// The caption in every other colour of `style`.
    fn recoloured(self, style: &Style) -> Vec<String> {
        style
            .colours()
            .iter()
            .filter(|&&c| c != self.colour)
            .map(|&c| self.phrase(c, style))
            .collect()
    }
}

/// What an edit does, with the objects it refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EditKind {
    /// "make the red circle blue": one object changes colour.
    Recolour {
        /// The object.
        object: ObjectRef,
        /// Its new colour.
        to: Colour,
    },
    /// "move the blue square to the left": one object moves by 0.2–0.35 × resolution.
    Move {
        /// The object.
        object: ObjectRef,
        /// Where it moves.
        direction: Direction,
    },
    /// "add a green triangle": one new object (random size and free position).
    Add {
        /// Colour and shape of the new object (absent from the source scene).
        object: ObjectRef,
    },
    /// "remove the yellow star": one object disappears.
    Remove {
        /// The object.
        object: ObjectRef,
    },
    /// "make the red circle larger": one object changes size class in place.
    Resize {
        /// The object.
        object: ObjectRef,
        /// Its new size.
        to: Size,
    },
    /// "swap the red circle and the blue square": two objects exchange centres.
    Swap {
        /// One object.
        first: ObjectRef,
        /// The other object.
        second: ObjectRef,
    },
}

/// Every edit kind's [`EditKind::name`], in the order of the enum.
pub const EDIT_KIND_NAMES: [&str; 6] = ["recolour", "move", "add", "remove", "resize", "swap"];

impl EditKind {
    /// Short name: "recolour", "move", "add", "remove", "resize" or "swap".
    pub fn name(&self) -> &'static str {
        match self {
            EditKind::Recolour { .. } => "recolour",
            EditKind::Move { .. } => "move",
            EditKind::Add { .. } => "add",
            EditKind::Remove { .. } => "remove",
            EditKind::Resize { .. } => "resize",
            EditKind::Swap { .. } => "swap",
        }
    }

    /// The instruction text in `style`'s words.
    pub fn instruction(&self, style: &Style) -> String {
        match self {
            EditKind::Recolour { object, to } => {
                format!(
                    "make the {} {}",
                    object.phrase(style),
                    style.colour_word(*to)
                )
            }
            EditKind::Move { object, direction } => {
                format!("move the {} {}", object.phrase(style), direction.phrase())
            }
            EditKind::Add { object } => {
                format!(
                    "add {}",
                    words::group_phrase(1, None, object.colour, object.shape, style)
                )
            }
            EditKind::Remove { object } => format!("remove the {}", object.phrase(style)),
            EditKind::Resize { object, to } => {
                let word = if *to == Size::Large {
                    "larger"
                } else {
                    "smaller"
                };
                format!("make the {} {word}", object.phrase(style))
            }
            EditKind::Swap { first, second } => {
                format!(
                    "swap the {} and the {}",
                    first.phrase(style),
                    second.phrase(style)
                )
            }
        }
    }

    /// Parses an instruction in the grammar [`EditKind::instruction`] writes ("make the red
    /// circle blue", "make the red circle larger", "move the red circle to the left", "add a
    /// red circle", "remove the red circle", "swap the red circle and the blue square"), in any
    /// domain's words.
    pub fn parse(text: &str) -> Result<EditKind, ParseError> {
        const VERB: &str = "an edit (make, move, add, remove or swap)";
        const CHANGE: &str = "a colour, \"larger\" or \"smaller\"";
        const DIRECTION: &str = "a direction (left, right, up or down)";
        let normalised = words_only(text);
        let mut p = Parser::new(&normalised)?;
        let kind = match p.next(VERB)? {
            "make" => {
                let object = object_ref(&mut p, "the")?;
                match p.next(CHANGE)? {
                    "larger" => EditKind::Resize {
                        object,
                        to: Size::Large,
                    },
                    "smaller" => EditKind::Resize {
                        object,
                        to: Size::Small,
                    },
                    word => EditKind::Recolour {
                        object,
                        to: style::colour_from_word(word).ok_or_else(|| p.unexpected(CHANGE))?,
                    },
                }
            }
            "move" => {
                let object = object_ref(&mut p, "the")?;
                let _ = p.skip_words(&["to", "the"]);
                let direction = match p.next(DIRECTION)? {
                    "left" => Direction::Left,
                    "right" => Direction::Right,
                    "up" => Direction::Up,
                    "down" => Direction::Down,
                    _ => return Err(p.unexpected(DIRECTION)),
                };
                EditKind::Move { object, direction }
            }
            "add" => EditKind::Add {
                object: object_ref(&mut p, "a")?,
            },
            "remove" => EditKind::Remove {
                object: object_ref(&mut p, "the")?,
            },
            "swap" => {
                let first = object_ref(&mut p, "the")?;
                if p.next("\"and\"")? != "and" {
                    return Err(p.unexpected("\"and\""));
                }
                let second = object_ref(&mut p, "the")?;
                EditKind::Swap { first, second }
            }
            _ => return Err(p.unexpected(VERB)),
        };
        p.end()?;
        Ok(kind)
    }

    /// The prompts a text-difference editor (FlowEdit) edits between: a caption of the object
    /// before the edit and one after it, `None` where there is none (the unconditional prompt:
    /// nothing before an `add`, nothing after a `remove`). `None` for `move` and `swap`, which
    /// change where objects are, something relation-free captions of one object do not say.
    pub fn prompt_pair(&self, style: &Style) -> Option<PromptPair> {
        let [before, after] = self.sides()?;
        let caption = |side: Option<ObjectCaption>| side.map(|o| o.phrase(o.colour, style));
        Some((caption(before), caption(after)))
    }

    /// What locates an edit ([`crate::models::locate`]), for each of [`Self::prompt_pair`]'s
    /// captions: the captions it is told apart from, its object in every other colour of
    /// `style` ("a red circle" → "a blue circle", "a green circle", …). The edit is located
    /// once: by the source's caption on the source image where the source names an object
    /// (recolour, resize, remove), else by the target's on the edited image (add); the other
    /// side's list is empty. (The target's caption on the edited image would also find the
    /// other objects an edit wrongly turned its colour.) `None` for `move` and `swap`, as
    /// there.
    pub fn contrast_pair(&self, style: &Style) -> Option<(Vec<String>, Vec<String>)> {
        let [before, after] = self.sides()?;
        let others = |side: Option<ObjectCaption>| -> Vec<String> {
            side.map(|o| o.recoloured(style)).unwrap_or_default()
        };
        Some(match before {
            Some(_) => (others(before), Vec::new()),
            None => (Vec::new(), others(after)),
        })
    }

    /// The object captioned before and after the edit ([`Self::prompt_pair`]).
    fn sides(&self) -> Option<[Option<ObjectCaption>; 2]> {
        let one = |size: Option<Size>, colour: Colour, shape: Shape| {
            Some(ObjectCaption {
                size,
                colour,
                shape,
            })
        };
        match *self {
            EditKind::Recolour { object, to } => Some([
                one(None, object.colour, object.shape),
                one(None, to, object.shape),
            ]),
            EditKind::Resize { object, to } => Some([
                one(Some(to.other()), object.colour, object.shape),
                one(Some(to), object.colour, object.shape),
            ]),
            EditKind::Add { object } => Some([None, one(None, object.colour, object.shape)]),
            EditKind::Remove { object } => Some([one(None, object.colour, object.shape), None]),
            EditKind::Move { .. } | EditKind::Swap { .. } => None,
        }
    }

    /// Source objects the edit may change (all others must stay as they are).
    pub fn touched(&self) -> Vec<ObjectRef> {
        match self {
            EditKind::Recolour { object, .. }
            | EditKind::Move { object, .. }
            | EditKind::Remove { object }
            | EditKind::Resize { object, .. } => vec![*object],
            EditKind::Add { .. } => Vec::new(),
            EditKind::Swap { first, second } => vec![*first, *second],
        }
    }

    /// Change in the number of objects (+1 add, −1 remove, 0 otherwise).
    pub fn count_delta(&self) -> isize {
        match self {
            EditKind::Add { .. } => 1,
            EditKind::Remove { .. } => -1,
            _ => 0,
        }
    }
}

/// `article colour shape` ("the red circle", "a red circle"; "an" too where `article` is "a").
fn object_ref(p: &mut Parser<'_>, article: &'static str) -> Result<ObjectRef, ParseError> {
    let word = p.next(article)?;
    if word != article && !(article == "a" && word == "an") {
        return Err(p.unexpected(article));
    }
    let colour =
        style::colour_from_word(p.next("a colour")?).ok_or_else(|| p.unexpected("a colour"))?;
    let shape =
        style::shape_from_word(p.next("a shape")?).ok_or_else(|| p.unexpected("a shape"))?;
    Ok(ObjectRef { colour, shape })
}

/// One edit triplet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditItem {
    /// Scene before the edit.
    pub source: Scene,
    /// Natural-language instruction.
    pub instruction: String,
    /// Scene after the edit.
    pub target: Scene,
    /// Structured description of the edit.
    pub kind: EditKind,
}

/// Builds a target scene for one edit kind, or `None` when the source does not allow it.
type EditMaker = fn(&Scene, &mut StdRng) -> Option<(EditKind, Scene)>;

/// Each edit kind with the source object counts it is sampled with.
const EDIT_MAKERS: [(usize, usize, EditMaker); 6] = [
    (1, 4, recolour),
    (1, 4, move_object),
    (1, 3, add),
    (1, 4, remove),
    (1, 4, resize),
    (2, 4, swap),
];

/// Samples an edit triplet: a uniformly chosen kind, then random source scenes until
/// one admits that kind.
pub fn sample_edit(resolution: u32, style: Style, rng: &mut StdRng) -> EditItem {
    let (min, max, maker) = EDIT_MAKERS[rng.random_range(0..EDIT_MAKERS.len())];
    loop {
        let count = rng.random_range(min..=max);
        let source = layout::random_scene(resolution, style, count, rng);
        if let Some((kind, target)) = maker(&source, rng) {
            let instruction = kind.instruction(&style);
            return EditItem {
                source,
                instruction,
                target,
                kind,
            };
        }
    }
}

/// Index of a random object of `scene`.
fn pick(scene: &Scene, rng: &mut StdRng) -> Option<usize> {
    (!scene.objects.is_empty()).then(|| rng.random_range(0..scene.objects.len()))
}

/// `scene` with object `index` replaced, if the result is still valid.
fn replaced(scene: &Scene, index: usize, object: Object) -> Option<Scene> {
    let mut target = scene.clone();
    target.objects[index] = object;
    target.is_valid().then_some(target)
}

fn recolour(scene: &Scene, rng: &mut StdRng) -> Option<(EditKind, Scene)> {
    let index = pick(scene, rng)?;
    let object = scene.objects[index];
    let free: Vec<Colour> = scene
        .style
        .colours()
        .iter()
        .copied()
        .filter(|c| {
            !scene
                .objects
                .iter()
                .any(|o| o.colour == *c && o.shape == object.shape)
        })
        .collect();
    let to = *free.choose(rng)?;
    let kind = EditKind::Recolour {
        object: ObjectRef::of(&object),
        to,
    };
    Some((
        kind,
        replaced(
            scene,
            index,
            Object {
                colour: to,
                ..object
            },
        )?,
    ))
}

fn move_object(scene: &Scene, rng: &mut StdRng) -> Option<(EditKind, Scene)> {
    let index = pick(scene, rng)?;
    let object = scene.objects[index];
    let shift = rng.random_range(MIN_SHIFT..MAX_SHIFT) * scene.resolution as f32;
    let mut directions = Direction::ALL;
    directions.shuffle(rng);
    directions.into_iter().find_map(|direction| {
        let (ux, uy) = direction.unit();
        let moved = Object {
            cx: object.cx + ux * shift,
            cy: object.cy + uy * shift,
            ..object
        };
        let kind = EditKind::Move {
            object: ObjectRef::of(&object),
            direction,
        };
        Some((kind, replaced(scene, index, moved)?))
    })
}

fn add(scene: &Scene, rng: &mut StdRng) -> Option<(EditKind, Scene)> {
    let style = scene.style;
    let absent: Vec<ObjectRef> = style
        .colours()
        .iter()
        .flat_map(|c| {
            style.shapes().iter().map(move |s| ObjectRef {
                colour: *c,
                shape: *s,
            })
        })
        .filter(|r| r.find(scene).is_none())
        .collect();
    let object = *absent.choose(rng)?;
    let mut target = scene.clone();
    layout::place_anywhere(&mut target, object.colour, object.shape, rng)
        .then_some((EditKind::Add { object }, target))
}

fn remove(scene: &Scene, rng: &mut StdRng) -> Option<(EditKind, Scene)> {
    let index = pick(scene, rng)?;
    let mut target = scene.clone();
    let object = target.objects.remove(index);
    Some((
        EditKind::Remove {
            object: ObjectRef::of(&object),
        },
        target,
    ))
}

fn resize(scene: &Scene, rng: &mut StdRng) -> Option<(EditKind, Scene)> {
    let index = pick(scene, rng)?;
    let object = scene.objects[index];
    let to = object.size.other();
    let kind = EditKind::Resize {
        object: ObjectRef::of(&object),
        to,
    };
    Some((kind, replaced(scene, index, Object { size: to, ..object })?))
}

fn swap(scene: &Scene, rng: &mut StdRng) -> Option<(EditKind, Scene)> {
    let (i, j) = (pick(scene, rng)?, pick(scene, rng)?);
    if i == j {
        return None;
    }
    let (a, b) = (scene.objects[i], scene.objects[j]);
    let mut target = scene.clone();
    target.objects[i] = Object {
        cx: b.cx,
        cy: b.cy,
        ..a
    };
    target.objects[j] = Object {
        cx: a.cx,
        cy: a.cy,
        ..b
    };
    let kind = EditKind::Swap {
        first: ObjectRef::of(&a),
        second: ObjectRef::of(&b),
    };
    target.is_valid().then_some((kind, target))
}
