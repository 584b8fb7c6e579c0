//! Scene model: shapes with exact geometry, colour slots, sizes, objects and scenes.

use serde::{Deserialize, Serialize};

use super::style::Style;
use super::words;

/// Smallest supported image side in pixels.
pub const MIN_RESOLUTION: u32 = 32;
/// Largest supported image side in pixels.
pub const MAX_RESOLUTION: u32 = 256;

/// Half side of a square, in units of the object radius.
const SQUARE_HALF: f32 = 0.85;
/// Circumradius of the equilateral triangle, in units of the object radius.
const TRIANGLE_CIRCUMRADIUS: f32 = 1.3;
/// Half diagonal of the diamond, in units of the object radius.
const DIAMOND_HALF: f32 = 1.2;
/// Outer radius of the star, in units of the object radius.
const STAR_OUTER: f32 = 1.25;
/// Inner radius of the star relative to its outer radius.
const STAR_INNER_RATIO: f32 = 0.5;
/// Pixels kept free between an object's bounding circle and the image border.
const BORDER: f32 = 1.0;

/// A geometric shape. All shapes are centred on the object centre; the triangle
/// (equilateral) and the star (five points) point up, the diamond is a square turned
/// by 45°.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Disc of radius `r`.
    Circle,
    /// Axis-aligned square of half side `0.85 r`.
    Square,
    /// Equilateral triangle pointing up, circumradius `1.3 r` around the centre.
    Triangle,
    /// Five-pointed star pointing up, outer radius `1.25 r`, inner radius half that.
    Star,
    /// Square rotated by 45°, half diagonal `1.2 r`.
    Diamond,
}

impl Shape {
    /// Every shape, in declaration order.
    pub const ALL: [Shape; 5] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Star,
        Shape::Diamond,
    ];

    /// Default (singular) English word.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Diamond => "diamond",
        }
    }

    /// Default plural English word.
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Star => "stars",
            Shape::Diamond => "diamonds",
        }
    }

    /// Whether the offset `(dx, dy)` from the centre (pixels, y down) lies inside the
    /// shape drawn with object radius `radius`.
    pub fn contains(self, dx: f32, dy: f32, radius: f32) -> bool {
        match self {
            Shape::Circle => dx * dx + dy * dy <= radius * radius,
            Shape::Square => dx.abs().max(dy.abs()) <= SQUARE_HALF * radius,
            Shape::Diamond => dx.abs() + dy.abs() <= DIAMOND_HALF * radius,
            Shape::Triangle => {
                let c = TRIANGLE_CIRCUMRADIUS * radius;
                dy <= 0.5 * c && dx.abs() * 3f32.sqrt() <= dy + c
            }
            Shape::Star => star_contains(dx, dy, STAR_OUTER * radius),
        }
    }

    /// Area in square pixels of the shape drawn with object radius `radius`.
    pub fn area(self, radius: f32) -> f32 {
        let unit = match self {
            Shape::Circle => std::f32::consts::PI,
            Shape::Square => 4.0 * SQUARE_HALF * SQUARE_HALF,
            Shape::Diamond => 2.0 * DIAMOND_HALF * DIAMOND_HALF,
            Shape::Triangle => 0.75 * 3f32.sqrt() * TRIANGLE_CIRCUMRADIUS * TRIANGLE_CIRCUMRADIUS,
            Shape::Star => {
                5.0 * STAR_OUTER * STAR_OUTER * STAR_INNER_RATIO * 36f32.to_radians().sin()
            }
        };
        unit * radius * radius
    }

    /// Radius of the smallest centred circle enclosing the shape.
    pub fn bounding_radius(self, radius: f32) -> f32 {
        let factor = match self {
            Shape::Circle => 1.0,
            Shape::Square => SQUARE_HALF * std::f32::consts::SQRT_2,
            Shape::Triangle => TRIANGLE_CIRCUMRADIUS,
            Shape::Star => STAR_OUTER,
            Shape::Diamond => DIAMOND_HALF,
        };
        factor * radius
    }
}

/// Point-in-star test for a five-pointed star pointing up with outer radius `outer`.
fn star_contains(dx: f32, dy: f32, outer: f32) -> bool {
    let rho = (dx * dx + dy * dy).sqrt();
    if rho > outer {
        return false;
    }
    let sector = 72f32.to_radians();
    // Angle from "up", folded into [0°, 36°] (one half of one point's sector).
    let theta = dx.atan2(-dy).rem_euclid(sector);
    let phi = theta.min(sector - theta);
    let (px, py) = (rho * phi.cos(), rho * phi.sin());
    let half = 36f32.to_radians();
    let inner = STAR_INNER_RATIO * outer;
    let (ix, iy) = (inner * half.cos(), inner * half.sin());
    // Inside when on the origin's side of the edge from the outer to the inner vertex.
    (ix - outer) * py - iy * (px - outer) >= 0.0
}

/// A colour slot. Its RGB value and word depend on the [`Style`]; [`Colour::rgb`] and
/// [`Colour::name`] give the default domain's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Colour {
    /// Red.
    Red,
    /// Green.
    Green,
    /// Blue.
    Blue,
    /// Yellow.
    Yellow,
    /// Purple.
    Purple,
    /// Orange.
    Orange,
    /// Cyan.
    Cyan,
}

impl Colour {
    /// Every colour slot, in declaration order.
    pub const ALL: [Colour; 7] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Purple,
        Colour::Orange,
        Colour::Cyan,
    ];

    /// RGB value in the default domain.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 40, 40],
            Colour::Green => [40, 170, 60],
            Colour::Blue => [40, 80, 220],
            Colour::Yellow => [245, 215, 30],
            Colour::Purple => [140, 60, 190],
            Colour::Orange => [250, 130, 20],
            Colour::Cyan => [30, 190, 210],
        }
    }

    /// Word in the default domain.
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Purple => "purple",
            Colour::Orange => "orange",
            Colour::Cyan => "cyan",
        }
    }
}

/// Object size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// Object radius 0.085 × resolution.
    Small,
    /// Object radius 0.125 × resolution.
    Large,
}

impl Size {
    /// Both sizes.
    pub const ALL: [Size; 2] = [Size::Small, Size::Large];

    /// Object radius in pixels at `resolution`.
    pub fn radius(self, resolution: u32) -> f32 {
        let fraction = match self {
            Size::Small => 0.085,
            Size::Large => 0.125,
        };
        fraction * resolution as f32
    }

    /// Caption word ("small" / "large").
    pub fn word(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }

    /// The other size.
    pub fn other(self) -> Size {
        match self {
            Size::Small => Size::Large,
            Size::Large => Size::Small,
        }
    }
}

/// Minimum free gap in pixels between the bounding circles of two objects.
pub fn object_gap(resolution: u32) -> f32 {
    (0.04 * resolution as f32).max(3.0)
}

/// One object of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Geometry.
    pub shape: Shape,
    /// Colour slot.
    pub colour: Colour,
    /// Size class.
    pub size: Size,
    /// Centre x in pixels (0 = left edge of the image).
    pub cx: f32,
    /// Centre y in pixels (0 = top edge of the image).
    pub cy: f32,
}

impl Object {
    /// Object radius in pixels at `resolution`.
    pub fn radius(&self, resolution: u32) -> f32 {
        self.size.radius(resolution)
    }

    /// Radius of the bounding circle in pixels at `resolution`.
    pub fn bounding_radius(&self, resolution: u32) -> f32 {
        self.shape.bounding_radius(self.radius(resolution))
    }

    /// Whether the bounding circle lies inside the image with a one-pixel border.
    pub fn is_inside(&self, resolution: u32) -> bool {
        let r = self.bounding_radius(resolution);
        let hi = resolution as f32 - BORDER;
        self.cx - r >= BORDER && self.cy - r >= BORDER && self.cx + r <= hi && self.cy + r <= hi
    }

    /// Its caption as a group of one, size named ("a small red circle").
    pub fn phrase(&self, style: &Style) -> String {
        words::group_phrase(1, Some(self.size), self.colour, self.shape, style)
    }

    /// The box around its bounding circle as fractions of the image, `[x0, y0, x1, y1]`
    /// (y down), within `[0, 1]`.
    pub fn edges(&self, resolution: u32) -> [f32; 4] {
        let (r, side) = (self.bounding_radius(resolution), resolution as f32);
        let at = |v: f32| (v / side).clamp(0.0, 1.0);
        [
            at(self.cx - r),
            at(self.cy - r),
            at(self.cx + r),
            at(self.cy + r),
        ]
    }

    /// Whether the bounding circles of `self` and `other` are at least
    /// [`object_gap`] apart.
    pub fn is_clear_of(&self, other: &Object, resolution: u32) -> bool {
        let needed = self.bounding_radius(resolution)
            + other.bounding_radius(resolution)
            + object_gap(resolution);
        let (dx, dy) = (self.cx - other.cx, self.cy - other.cy);
        dx * dx + dy * dy >= needed * needed
    }
}

/// A scene: non-overlapping objects on a square canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// The objects (never overlapping, always inside the image).
    pub objects: Vec<Object>,
    /// Image side in pixels.
    pub resolution: u32,
    /// Rendering and vocabulary style.
    pub style: Style,
}

impl Scene {
    /// Whether every object is inside the image and all pairs keep the minimum gap.
    pub fn is_valid(&self) -> bool {
        let res = self.resolution;
        self.objects.iter().enumerate().all(|(i, a)| {
            a.is_inside(res) && self.objects[i + 1..].iter().all(|b| a.is_clear_of(b, res))
        })
    }

    /// Each object's own caption ([`Object::phrase`]) with its box ([`Object::edges`]): what
    /// regional prompting with one region per object reads where.
    pub fn object_regions(&self) -> Vec<(String, [f32; 4])> {
        self.objects
            .iter()
            .map(|o| (o.phrase(&self.style), o.edges(self.resolution)))
            .collect()
    }

    /// Exhaustive relation-free description of the objects, grouped by identical
    /// (size, colour, shape) in order of first appearance and joined with "and", e.g.
    /// "a small red circle and two large blue squares"; "nothing" for an empty scene.
    /// Sizes are always named.
    /// Captions of generated caption items come from their [`SceneSpec`](super::SceneSpec)
    /// instead, which may add a spatial relation.
    pub fn caption(&self) -> String {
        let mut groups: Vec<(Object, usize)> = Vec::new();
        for object in &self.objects {
            let same = |g: &&mut (Object, usize)| {
                (g.0.size, g.0.colour, g.0.shape) == (object.size, object.colour, object.shape)
            };
            match groups.iter_mut().find(same) {
                Some(group) => group.1 += 1,
                None => groups.push((*object, 1)),
            }
        }
        let phrases: Vec<String> = groups
            .iter()
            .map(|(o, n)| words::group_phrase(*n, Some(o.size), o.colour, o.shape, &self.style))
            .collect();
        if phrases.is_empty() {
            return "nothing".to_owned();
        }
        phrases.join(" and ")
    }
}
