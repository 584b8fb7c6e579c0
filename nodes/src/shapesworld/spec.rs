//! Scene specifications: what a caption says, its wording and its parser.
//!
//! Caption grammar (lowercase words separated by spaces):
//!
//! ```text
//! caption  := group [relation group]
//! group    := count [size] colour shape      (shape plural when count > 1)
//! count    := "a" | "an" | "one" | "two" | "three" | "four"
//! size     := "small" | "large"
//! relation := "left of" | "right of" | "above" | "below"
//! ```
//!
//! Colour and shape words of every domain are accepted. The parser is lenient about
//! case, punctuation, a leading "a photo of" / "an image of", "to the" before
//! "left of"/"right of", and singular/plural agreement.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::scene::{Colour, Shape, Size};
use super::style::{self, Style};
use super::words;

/// Probability that a sampled group names its size in the caption.
const SIZED_GROUP_PROBABILITY: f64 = 0.3;
/// Probability that a sampled spec has two groups and a relation.
const TWO_GROUP_PROBABILITY: f64 = 0.5;
/// Largest count a sampled group gets.
const MAX_SAMPLED_COUNT: usize = 3;
/// Largest total object count of a sampled spec.
const MAX_SAMPLED_OBJECTS: usize = 4;

/// Spatial relation between the centroids of two groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// First group left of the second.
    LeftOf,
    /// First group right of the second.
    RightOf,
    /// First group above the second.
    Above,
    /// First group below the second.
    Below,
}

impl Relation {
    /// The halves of the canvas where the layout puts the first and the second group of
    /// "first `self` second", as `[x0, y0, x1, y1]` fractions of the canvas (y down).
    pub fn halves(self) -> ([f32; 4], [f32; 4]) {
        let (left, right) = ([0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]);
        let (top, bottom) = ([0.0, 0.0, 1.0, 0.5], [0.0, 0.5, 1.0, 1.0]);
        match self {
            Relation::LeftOf => (left, right),
            Relation::RightOf => (right, left),
            Relation::Above => (top, bottom),
            Relation::Below => (bottom, top),
        }
    }

    /// All relations.
    pub const ALL: [Relation; 4] = [
        Relation::LeftOf,
        Relation::RightOf,
        Relation::Above,
        Relation::Below,
    ];

    /// Words of the relation ("left of", "above", ...).
    pub fn phrase(self) -> &'static str {
        match self {
            Relation::LeftOf => "left of",
            Relation::RightOf => "right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }

    /// The opposite relation ("left of" ↔ "right of", "above" ↔ "below").
    pub fn reversed(self) -> Relation {
        match self {
            Relation::LeftOf => Relation::RightOf,
            Relation::RightOf => Relation::LeftOf,
            Relation::Above => Relation::Below,
            Relation::Below => Relation::Above,
        }
    }

    /// Signed distance in pixels by which `a` satisfies the relation to `b` along the
    /// relation's axis (positive when it holds), for points `(x, y)` with y down.
    pub fn separation(self, a: (f32, f32), b: (f32, f32)) -> f32 {
        match self {
            Relation::LeftOf => b.0 - a.0,
            Relation::RightOf => a.0 - b.0,
            Relation::Above => b.1 - a.1,
            Relation::Below => a.1 - b.1,
        }
    }
}

/// A group of identical objects: `count` × (colour, shape), optionally of a named size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Number of objects (1..=4; sampled specs use 1..=3).
    pub count: usize,
    /// Size named by the caption; `None` means the caption does not mention size (the
    /// layout then picks one size for the whole group).
    pub size: Option<Size>,
    /// Colour slot.
    pub colour: Colour,
    /// Shape.
    pub shape: Shape,
}

impl GroupSpec {
    /// Whether an object with these attributes belongs to this group (size only
    /// matters when the spec names one).
    pub fn matches(&self, shape: Shape, colour: Colour, size: Size) -> bool {
        self.shape == shape && self.colour == colour && self.size.is_none_or(|s| s == size)
    }

    /// Caption noun phrase of the group in `style`'s words.
    pub fn phrase(&self, style: &Style) -> String {
        words::group_phrase(self.count, self.size, self.colour, self.shape, style)
    }

    fn sample(style: &Style, max_count: usize, rng: &mut StdRng) -> GroupSpec {
        let count = rng.random_range(1..=max_count);
        let size = rng
            .random_bool(SIZED_GROUP_PROBABILITY)
            .then(|| *Size::ALL.choose(rng).unwrap_or(&Size::Small));
        GroupSpec {
            count,
            size,
            colour: *style.colours().choose(rng).unwrap_or(&Colour::Red),
            shape: *style.shapes().choose(rng).unwrap_or(&Shape::Circle),
        }
    }
}

/// The second group of a spec and how the first group relates to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RelatedGroup {
    /// Relation of the first group to this one.
    pub relation: Relation,
    /// The group.
    pub group: GroupSpec,
}

/// What a caption asserts: one group, or two groups and the relation between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SceneSpec {
    /// The first (or only) group.
    pub first: GroupSpec,
    /// The optional second group with the relation "first `relation` second".
    pub second: Option<RelatedGroup>,
}

/// Why a caption or an edit instruction could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The text has no words.
    #[error("no words")]
    Empty,
    /// A word did not fit the grammar.
    #[error("word {position} ({found:?}): expected {expected}")]
    Unexpected {
        /// Zero-based word index.
        position: usize,
        /// What the grammar expected there.
        expected: &'static str,
        /// The word found.
        found: String,
    },
    /// The text ended while the grammar expected more.
    #[error("the text ended early: expected {expected}")]
    UnexpectedEnd {
        /// What the grammar expected.
        expected: &'static str,
    },
}

impl SceneSpec {
    /// Caption in the default domain's words.
    pub fn caption(&self) -> String {
        self.caption_in(&Style::default())
    }

    /// Caption in `style`'s words.
    pub fn caption_in(&self, style: &Style) -> String {
        let first = self.first.phrase(style);
        match &self.second {
            None => first,
            Some(r) => format!("{first} {} {}", r.relation.phrase(), r.group.phrase(style)),
        }
    }

    /// For a spec relating two groups: each group's own caption (in `style`'s words) with the
    /// half of the canvas the layout puts it in (see [`Relation::halves`]); empty for one group.
    /// What regional prompting reads where.
    pub fn group_regions(&self, style: &Style) -> Vec<(String, [f32; 4])> {
        let Some(related) = self.second else {
            return Vec::new();
        };
        let (first, second) = related.relation.halves();
        [(self.first, first), (related.group, second)]
            .into_iter()
            .map(|(group, half)| (group.phrase(style), half))
            .collect()
    }

    /// The same words in other arrangements, for a spec relating two groups (empty for one
    /// group): the relation reversed, the groups' colours swapped, their shapes swapped, in
    /// that order (a swap of two equal colours or shapes gives the spec itself).
    pub fn rearrangements(&self) -> Vec<SceneSpec> {
        let Some(related) = self.second else {
            return Vec::new();
        };
        let (a, b) = (self.first, related.group);
        let with = |first: GroupSpec, relation: Relation, group: GroupSpec| SceneSpec {
            first,
            second: Some(RelatedGroup { relation, group }),
        };
        let r = related.relation;
        vec![
            with(a, r.reversed(), b),
            with(
                GroupSpec {
                    colour: b.colour,
                    ..a
                },
                r,
                GroupSpec {
                    colour: a.colour,
                    ..b
                },
            ),
            with(
                GroupSpec {
                    shape: b.shape,
                    ..a
                },
                r,
                GroupSpec {
                    shape: a.shape,
                    ..b
                },
            ),
        ]
    }

    /// The groups, first then second.
    pub fn groups(&self) -> Vec<GroupSpec> {
        std::iter::once(self.first)
            .chain(self.second.map(|r| r.group))
            .collect()
    }

    /// Total number of objects the spec asks for.
    pub fn object_count(&self) -> usize {
        self.groups().iter().map(|g| g.count).sum()
    }

    /// Samples a spec that the layout can always realise in `style`: one group of 1–3
    /// objects, or (half the time) two groups with distinct (colour, shape), at most four
    /// objects in total, and a relation. A three-object group next to another group is
    /// never named "large" (the layout makes it small so it fits in half the image).
    pub fn sample(style: &Style, rng: &mut StdRng) -> SceneSpec {
        let mut first = GroupSpec::sample(style, MAX_SAMPLED_COUNT, rng);
        if !rng.random_bool(TWO_GROUP_PROBABILITY) {
            return SceneSpec {
                first,
                second: None,
            };
        }
        let max_second = (MAX_SAMPLED_OBJECTS - first.count).min(MAX_SAMPLED_COUNT);
        let mut group = GroupSpec::sample(style, max_second, rng);
        while (group.colour, group.shape) == (first.colour, first.shape) {
            group.colour = *style.colours().choose(rng).unwrap_or(&group.colour);
            group.shape = *style.shapes().choose(rng).unwrap_or(&group.shape);
        }
        for g in [&mut first, &mut group] {
            if g.count == MAX_SAMPLED_COUNT && g.size == Some(Size::Large) {
                g.size = Some(Size::Small);
            }
        }
        let relation = *Relation::ALL.choose(rng).unwrap_or(&Relation::LeftOf);
        SceneSpec {
            first,
            second: Some(RelatedGroup { relation, group }),
        }
    }

    /// Parses a caption (see the module docs for the grammar).
    pub fn parse(text: &str) -> Result<SceneSpec, ParseError> {
        let normalised = words_only(text);
        let mut parser = Parser::new(&normalised)?;
        parser.skip_prefix();
        let first = parser.group()?;
        let second = match parser.peek() {
            None => None,
            Some(_) => {
                let relation = parser.relation()?;
                let group = parser.group()?;
                Some(RelatedGroup { relation, group })
            }
        };
        parser.end()?;
        Ok(SceneSpec { first, second })
    }
}

/// Recursive-descent parser over normalised caption (or edit instruction) tokens.
pub(super) struct Parser<'a> {
    tokens: Vec<&'a str>,
    pos: usize,
}

impl<'a> Parser<'a> {
    /// A parser over `normalised` ([`words_only`]) text; an error when it has no words.
    pub(super) fn new(normalised: &'a str) -> Result<Self, ParseError> {
        let tokens: Vec<&str> = normalised.split_whitespace().collect();
        if tokens.is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(Parser { tokens, pos: 0 })
    }

    pub(super) fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.pos).copied()
    }

    pub(super) fn next(&mut self, expected: &'static str) -> Result<&'a str, ParseError> {
        let token = self.peek().ok_or(ParseError::UnexpectedEnd { expected })?;
        self.pos += 1;
        Ok(token)
    }

    /// The word just read did not fit: it was meant to be `expected`.
    pub(super) fn unexpected(&self, expected: &'static str) -> ParseError {
        ParseError::Unexpected {
            position: self.pos.saturating_sub(1),
            expected,
            found: self
                .tokens
                .get(self.pos.saturating_sub(1))
                .map_or_else(String::new, |t| t.to_string()),
        }
    }

    pub(super) fn skip_words(&mut self, words: &[&str]) -> bool {
        let matched = self.tokens.get(self.pos..self.pos + words.len()) == Some(words);
        if matched {
            self.pos += words.len();
        }
        matched
    }

    fn skip_prefix(&mut self) {
        let _ = self.skip_words(&["a", "photo", "of"]) || self.skip_words(&["an", "image", "of"]);
    }

    fn group(&mut self) -> Result<GroupSpec, ParseError> {
        const COUNT: &str = "a count (a, an, one .. four)";
        let count = words::count_from_word(self.next(COUNT)?)
            .filter(|n| *n > 0)
            .ok_or_else(|| self.unexpected(COUNT))?;
        let mut word = self.next("a size or colour")?;
        let size = Size::ALL.into_iter().find(|s| s.word() == word);
        if size.is_some() {
            word = self.next("a colour")?;
        }
        let colour = style::colour_from_word(word).ok_or_else(|| self.unexpected("a colour"))?;
        let shape = style::shape_from_word(self.next("a shape")?)
            .ok_or_else(|| self.unexpected("a shape"))?;
        Ok(GroupSpec {
            count,
            size,
            colour,
            shape,
        })
    }

    fn relation(&mut self) -> Result<Relation, ParseError> {
        const RELATION: &str = "a relation (left of, right of, above, below)";
        let _ = self.skip_words(&["to", "the"]);
        let relation = match self.next(RELATION)? {
            "above" => Relation::Above,
            "below" => Relation::Below,
            "left" => Relation::LeftOf,
            "right" => Relation::RightOf,
            _ => return Err(self.unexpected(RELATION)),
        };
        if matches!(relation, Relation::LeftOf | Relation::RightOf) && self.next("\"of\"")? != "of"
        {
            return Err(self.unexpected("\"of\""));
        }
        Ok(relation)
    }

    pub(super) fn end(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(found) => Err(ParseError::Unexpected {
                position: self.pos,
                expected: "the end of the text",
                found: found.to_string(),
            }),
        }
    }
}

/// Lower-case letters and digits, every other character turned into a space.
pub fn words_only(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect()
}
