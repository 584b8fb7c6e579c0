//! Domains and their styles: background colour, palette, shape subset and vocabulary.
//!
//! Every domain renders the same abstract scenes (a [`Colour`] is a palette slot, a
//! [`Shape`] a geometry); the domain decides what the slot looks like and which words
//! name it. That makes a domain a "personalised" appearance + vocabulary shift of the
//! same underlying task.

use serde::{Deserialize, Serialize};

use super::scene::{Colour, Shape};

/// A visual and linguistic domain of ShapesWorld.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// Light grey background, all seven saturated colours, all five shapes, plain words
    /// ("red", "circle", ...).
    #[default]
    Default,
    /// Dark slate background, four pastel colours called "pink" (red slot), "mint"
    /// (green), "sky" (blue) and "lemon" (yellow); circles, squares, triangles and stars.
    Pastel,
    /// Near-black background, five jewel tones called "crimson" (red), "emerald"
    /// (green), "azure" (blue), "gold" (yellow) and "violet" (purple); all five shapes.
    Dark,
    /// Cream paper with Bauhaus red, blue, yellow and green (plain colour words); no
    /// stars, and the shapes are called "disc" (circle), "box" (square), "triangle" and
    /// "rhombus" (diamond).
    Geometric,
}

impl Domain {
    /// Every domain, in declaration order.
    pub const ALL: [Domain; 4] = [
        Domain::Default,
        Domain::Pastel,
        Domain::Dark,
        Domain::Geometric,
    ];

    /// Lowercase name of the domain (as used in serialised data).
    pub fn name(self) -> &'static str {
        match self {
            Domain::Default => "default",
            Domain::Pastel => "pastel",
            Domain::Dark => "dark",
            Domain::Geometric => "geometric",
        }
    }

    fn table(self) -> &'static DomainTable {
        match self {
            Domain::Default => &DEFAULT,
            Domain::Pastel => &PASTEL,
            Domain::Dark => &DARK,
            Domain::Geometric => &GEOMETRIC,
        }
    }
}

/// A colour slot re-skinned by a domain: its RGB value and its word.
type ColourOverride = (Colour, [u8; 3], &'static str);
/// A shape renamed by a domain: singular and plural word.
type ShapeOverride = (Shape, &'static str, &'static str);

/// Static description of one domain.
struct DomainTable {
    background: [u8; 3],
    colours: &'static [Colour],
    colour_overrides: &'static [ColourOverride],
    shapes: &'static [Shape],
    shape_overrides: &'static [ShapeOverride],
}

const DEFAULT: DomainTable = DomainTable {
    background: [240, 240, 240],
    colours: &Colour::ALL,
    colour_overrides: &[],
    shapes: &Shape::ALL,
    shape_overrides: &[],
};

const PASTEL: DomainTable = DomainTable {
    background: [44, 48, 60],
    colours: &[Colour::Red, Colour::Green, Colour::Blue, Colour::Yellow],
    colour_overrides: &[
        (Colour::Red, [250, 140, 165], "pink"),
        (Colour::Green, [140, 225, 170], "mint"),
        (Colour::Blue, [140, 180, 250], "sky"),
        (Colour::Yellow, [245, 235, 140], "lemon"),
    ],
    shapes: &[Shape::Circle, Shape::Square, Shape::Triangle, Shape::Star],
    shape_overrides: &[],
};

const DARK: DomainTable = DomainTable {
    background: [14, 14, 18],
    colours: &[
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Purple,
    ],
    colour_overrides: &[
        (Colour::Red, [230, 30, 60], "crimson"),
        (Colour::Green, [20, 200, 100], "emerald"),
        (Colour::Blue, [40, 130, 255], "azure"),
        (Colour::Yellow, [255, 205, 0], "gold"),
        (Colour::Purple, [190, 70, 240], "violet"),
    ],
    shapes: &Shape::ALL,
    shape_overrides: &[],
};

const GEOMETRIC: DomainTable = DomainTable {
    background: [245, 238, 220],
    colours: &[Colour::Red, Colour::Blue, Colour::Yellow, Colour::Green],
    colour_overrides: &[
        (Colour::Red, [210, 40, 40], "red"),
        (Colour::Blue, [30, 70, 190], "blue"),
        (Colour::Yellow, [240, 190, 20], "yellow"),
        (Colour::Green, [40, 150, 70], "green"),
    ],
    shapes: &[
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Diamond,
    ],
    shape_overrides: &[
        (Shape::Circle, "disc", "discs"),
        (Shape::Square, "box", "boxes"),
        (Shape::Diamond, "rhombus", "rhombuses"),
    ],
};

/// The rendering and vocabulary style of a scene. It is fully determined by the
/// [`Domain`]; it exists as its own type so renderers, samplers and scorers take one
/// explicit "how does this world look and speak" argument.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Style {
    /// The domain this style belongs to.
    pub domain: Domain,
}

impl From<Domain> for Style {
    fn from(domain: Domain) -> Self {
        Style { domain }
    }
}

impl Style {
    /// Background RGB colour.
    pub fn background(&self) -> [u8; 3] {
        self.domain.table().background
    }

    /// The colour slots used by this domain.
    pub fn colours(&self) -> &'static [Colour] {
        self.domain.table().colours
    }

    /// The shapes used by this domain.
    pub fn shapes(&self) -> &'static [Shape] {
        self.domain.table().shapes
    }

    /// RGB value of a colour slot in this domain (the default palette value for slots
    /// the domain does not use).
    pub fn rgb(&self, colour: Colour) -> [u8; 3] {
        self.colour_override(colour)
            .map_or_else(|| colour.rgb(), |entry| entry.1)
    }

    /// Word naming a colour slot in this domain.
    pub fn colour_word(&self, colour: Colour) -> &'static str {
        self.colour_override(colour)
            .map_or_else(|| colour.name(), |entry| entry.2)
    }

    /// Word naming a shape in this domain, plural when `plural` is true.
    pub fn shape_word(&self, shape: Shape, plural: bool) -> &'static str {
        let entry = self
            .domain
            .table()
            .shape_overrides
            .iter()
            .find(|e| e.0 == shape);
        match (entry, plural) {
            (Some(e), false) => e.1,
            (Some(e), true) => e.2,
            (None, false) => shape.name(),
            (None, true) => shape.plural(),
        }
    }

    fn colour_override(&self, colour: Colour) -> Option<&'static ColourOverride> {
        self.domain
            .table()
            .colour_overrides
            .iter()
            .find(|e| e.0 == colour)
    }
}

/// Colour slot named by `word` in any domain ("red", "crimson" and "pink" all name
/// [`Colour::Red`]).
pub(super) fn colour_from_word(word: &str) -> Option<Colour> {
    Domain::ALL.iter().find_map(|d| {
        let style = Style::from(*d);
        Colour::ALL
            .into_iter()
            .find(|c| style.colour_word(*c) == word)
    })
}

/// Shape named by `word` (singular or plural) in any domain.
pub(super) fn shape_from_word(word: &str) -> Option<Shape> {
    Domain::ALL.iter().find_map(|d| {
        let style = Style::from(*d);
        Shape::ALL
            .into_iter()
            .find(|s| style.shape_word(*s, false) == word || style.shape_word(*s, true) == word)
    })
}

/// Every colour and shape word of every domain (shape words in singular and plural).
pub(super) fn lexicon_words() -> Vec<&'static str> {
    let mut words = Vec::new();
    for domain in Domain::ALL {
        let style = Style::from(domain);
        words.extend(Colour::ALL.iter().map(|c| style.colour_word(*c)));
        for shape in Shape::ALL {
            words.push(style.shape_word(shape, false));
            words.push(style.shape_word(shape, true));
        }
    }
    words
}
