//! Deterministic object detector for ShapesWorld images (no learning involved).
//!
//! 1. Labelling: every pixel is matched to the nearest background → palette-colour
//!    segment in RGB (antialiased or blurred edges are blends with the background, so
//!    they lie on their own colour's segment and are never mistaken for a third colour).
//!    It takes that colour when it lies in the colour's half of the segment and within
//!    `MAX_COLOUR_DISTANCE` of the segment; otherwise it is background/unclear. Colours
//!    far from every palette colour (e.g. artefacts of a generative model) are ignored.
//! 2. Components: same-label pixels form 8-connected components; components smaller than
//!    half a small object's squared radius are noise and dropped.
//! 3. Shape: each component's soft coverage (position of each nearby pixel along its
//!    colour's segment, with a small dead zone against noise) gives a mass (area) and a
//!    centroid that blur does not change. For every shape of the style, the template
//!    with that area is centred on the centroid, rasterised with 4 × 4 antialiasing,
//!    and compared with the coverage by soft intersection-over-union — sharp, and after
//!    one and two 3 × 3 box blurs, so blurry generations match too. The best shape wins;
//!    a component whose best IoU is below `MIN_IOU` is not an object.
//! 4. Size: the radius implied by the mass is compared with the geometric mean of the
//!    small and large radii.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::scene::{Colour, Object, Shape, Size};
use super::style::Style;

/// Largest RGB distance from a background → colour segment at which a pixel still
/// counts as that colour.
const MAX_COLOUR_DISTANCE: f32 = 100.0;
/// Smallest component area, in units of the small object radius squared.
const MIN_AREA_FACTOR: f32 = 0.5;
/// Smallest soft template IoU for a component to count as an object.
const MIN_IOU: f32 = 0.5;
/// Marker for pixels that belong to no component.
const NO_COMPONENT: u32 = u32::MAX;
/// Pixels added around a component's bounding box when fitting templates.
const WINDOW_PAD: u32 = 3;
/// Template subsamples per pixel side.
const TEMPLATE_SUPERSAMPLE: u32 = 4;
/// Number of 3 × 3 box-blur passes tried on each template (0 = sharp only).
const BLUR_LEVELS: usize = 2;
/// Coverage below this (and above one minus this) is flattened to 0 (1), so noise in
/// background and interior pixels does not add up.
const DEAD_ZONE: f32 = 0.15;

/// One detected object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Best-fitting shape.
    pub shape: Shape,
    /// Palette colour of the component.
    pub colour: Colour,
    /// Size class of the radius implied by the component's area.
    pub size: Size,
    /// Centre x in pixels (coverage-weighted centroid).
    pub cx: f32,
    /// Centre y in pixels (coverage-weighted centroid).
    pub cy: f32,
    /// Number of pixels labelled with the component's colour.
    pub area: u32,
}

impl Detection {
    /// The detection as a scene object.
    pub fn object(&self) -> Object {
        Object {
            shape: self.shape,
            colour: self.colour,
            size: self.size,
            cx: self.cx,
            cy: self.cy,
        }
    }
}

/// Detects the objects of a square ShapesWorld image rendered (or generated) in `style`.
pub fn detect(image: &RgbImage, style: &Style) -> Vec<Detection> {
    let resolution = image.width().min(image.height());
    let small = Size::Small.radius(resolution);
    let segmentation = Segmentation::new(image, style, (MIN_AREA_FACTOR * small * small) as u32);
    (0..segmentation.components.len())
        .filter(|id| segmentation.is_object(*id as u32))
        .filter_map(|id| classify(image, &segmentation, id, style, resolution))
        .collect()
}

/// A connected set of same-colour pixels.
#[derive(Debug, Clone, Copy)]
struct Component {
    colour: Colour,
    area: u32,
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

/// Pixel-to-component map and the components.
struct Segmentation {
    width: u32,
    height: u32,
    owner: Vec<u32>,
    components: Vec<Component>,
    min_area: u32,
}

impl Segmentation {
    fn new(image: &RgbImage, style: &Style, min_area: u32) -> Segmentation {
        let (width, height) = image.dimensions();
        let labels: Vec<Option<Colour>> = image.pixels().map(|p| label(p.0, style)).collect();
        let mut segmentation = Segmentation {
            width,
            height,
            owner: vec![NO_COMPONENT; labels.len()],
            components: Vec::new(),
            min_area,
        };
        for start in 0..labels.len() {
            if let Some(colour) = labels[start] {
                if segmentation.owner[start] == NO_COMPONENT {
                    segmentation.flood(start, colour, &labels);
                }
            }
        }
        segmentation
    }

    /// Whether component `owner` is large enough to be an object candidate.
    fn is_object(&self, owner: u32) -> bool {
        self.components
            .get(owner as usize)
            .is_some_and(|c| c.area >= self.min_area)
    }

    /// Collects the 8-connected component of `colour` pixels containing `start`.
    fn flood(&mut self, start: usize, colour: Colour, labels: &[Option<Colour>]) {
        let id = self.components.len() as u32;
        let (x, y) = (start as u32 % self.width, start as u32 / self.width);
        let mut component = Component {
            colour,
            area: 0,
            x0: x,
            y0: y,
            x1: x,
            y1: y,
        };
        let mut stack = vec![start];
        self.owner[start] = id;
        while let Some(index) = stack.pop() {
            let (x, y) = (index as u32 % self.width, index as u32 / self.width);
            component.area += 1;
            component.x0 = component.x0.min(x);
            component.x1 = component.x1.max(x);
            component.y0 = component.y0.min(y);
            component.y1 = component.y1.max(y);
            for neighbour in neighbours(x, y, self.width, self.height) {
                if labels[neighbour] == Some(colour) && self.owner[neighbour] == NO_COMPONENT {
                    self.owner[neighbour] = id;
                    stack.push(neighbour);
                }
            }
        }
        self.components.push(component);
    }
}

/// Indices of the (up to eight) pixels around `(x, y)` in a `width × height` image.
fn neighbours(x: u32, y: u32, width: u32, height: u32) -> impl Iterator<Item = usize> {
    let (x, y, w, h) = (x as i64, y as i64, width as i64, height as i64);
    (-1..=1i64)
        .flat_map(move |dy| (-1..=1i64).map(move |dx| (x + dx, y + dy)))
        .filter(move |&(nx, ny)| (nx, ny) != (x, y) && nx >= 0 && ny >= 0 && nx < w && ny < h)
        .map(move |(nx, ny)| (ny * w + nx) as usize)
}

/// Position of `pixel` along the background → `colour` segment: the clamped
/// projection fraction and the distance from the segment.
fn along(pixel: [u8; 3], colour: [u8; 3], background: [u8; 3]) -> (f32, f32) {
    let axis: [f32; 3] = std::array::from_fn(|i| colour[i] as f32 - background[i] as f32);
    let offset: [f32; 3] = std::array::from_fn(|i| pixel[i] as f32 - background[i] as f32);
    let norm: f32 = axis.iter().map(|a| a * a).sum::<f32>().max(1.0);
    let t = (offset.iter().zip(&axis).map(|(o, a)| o * a).sum::<f32>() / norm).clamp(0.0, 1.0);
    let off_segment: f32 = offset
        .iter()
        .zip(&axis)
        .map(|(o, a)| (o - t * a).powi(2))
        .sum::<f32>()
        .sqrt();
    (t, off_segment)
}

/// Palette colour of a pixel, `None` for background or unclear pixels. The pixel is
/// matched to the nearest background → colour segment (so antialiased and blurred
/// edges, which are blends with the background, are never mistaken for a third
/// colour) and labelled with that colour when it lies in the colour's half of the
/// segment and within `MAX_COLOUR_DISTANCE` of it.
fn label(pixel: [u8; 3], style: &Style) -> Option<Colour> {
    let background = style.background();
    let (colour, (t, off)) = style
        .colours()
        .iter()
        .map(|c| (*c, along(pixel, style.rgb(*c), background)))
        .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))?;
    (t >= 0.5 && off <= MAX_COLOUR_DISTANCE).then_some(colour)
}

/// Rectangle of pixels around one component.
#[derive(Debug, Clone, Copy)]
struct Window {
    x0: u32,
    y0: u32,
    width: u32,
    height: u32,
}

impl Window {
    fn around(c: &Component, image_width: u32, image_height: u32) -> Window {
        let (x0, y0) = (
            c.x0.saturating_sub(WINDOW_PAD),
            c.y0.saturating_sub(WINDOW_PAD),
        );
        let x1 = (c.x1 + WINDOW_PAD).min(image_width - 1);
        let y1 = (c.y1 + WINDOW_PAD).min(image_height - 1);
        Window {
            x0,
            y0,
            width: x1 + 1 - x0,
            height: y1 + 1 - y0,
        }
    }

    fn pixels(&self) -> impl Iterator<Item = (u32, u32)> {
        let Window {
            x0,
            y0,
            width,
            height,
        } = *self;
        (y0..y0 + height).flat_map(move |y| (x0..x0 + width).map(move |x| (x, y)))
    }
}

/// Classifies component `id` as the best-fitting shape of the style, if any fits.
///
/// The component's soft coverage (how far each pixel lies from the background towards
/// the component's colour) gives a blur-invariant mass and centroid. For each shape, the
/// radius with that area is centred on the centroid, rasterised with antialiasing and
/// compared (soft IoU) with the coverage, both sharp and after one or two 3 × 3 box
/// blurs; the best shape wins.
fn classify(
    image: &RgbImage,
    segmentation: &Segmentation,
    id: usize,
    style: &Style,
    resolution: u32,
) -> Option<Detection> {
    let component = &segmentation.components[id];
    let window = Window::around(component, segmentation.width, segmentation.height);
    let coverage = soft_coverage(image, segmentation, id, style, &window);
    let mass: f32 = coverage.iter().sum();
    let (sx, sy) = window
        .pixels()
        .zip(&coverage)
        .fold((0.0, 0.0), |(sx, sy), ((x, y), f)| {
            (sx + f * (x as f32 + 0.5), sy + f * (y as f32 + 0.5))
        });
    if mass <= 0.0 {
        return None;
    }
    let (cx, cy) = (sx / mass, sy / mass);
    let (shape, iou) = style
        .shapes()
        .iter()
        .map(|shape| {
            let radius = (mass / shape.area(1.0)).sqrt();
            (
                *shape,
                template_iou(*shape, radius, (cx, cy), &window, &coverage),
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    if iou < MIN_IOU {
        return None;
    }
    let radius = (mass / shape.area(1.0)).sqrt();
    let threshold = (Size::Small.radius(resolution) * Size::Large.radius(resolution)).sqrt();
    Some(Detection {
        shape,
        colour: component.colour,
        size: if radius < threshold {
            Size::Small
        } else {
            Size::Large
        },
        cx,
        cy,
        area: component.area,
    })
}

/// Dead-zone remapping of a coverage fraction (symmetric around 0.5, so edge mass is
/// preserved).
fn flatten(fraction: f32) -> f32 {
    ((fraction - DEAD_ZONE) / (1.0 - 2.0 * DEAD_ZONE)).clamp(0.0, 1.0)
}

/// Per-pixel coverage of component `id` over `window`: the pixel's position along the
/// background → colour segment, for pixels not owned by another object-sized component.
fn soft_coverage(
    image: &RgbImage,
    segmentation: &Segmentation,
    id: usize,
    style: &Style,
    window: &Window,
) -> Vec<f32> {
    let background = style.background();
    let colour = style.rgb(segmentation.components[id].colour);
    window
        .pixels()
        .map(|(x, y)| {
            let owner = segmentation.owner[(y * segmentation.width + x) as usize];
            if owner != id as u32 && segmentation.is_object(owner) {
                return 0.0;
            }
            flatten(along(image.get_pixel(x, y).0, colour, background).0)
        })
        .collect()
}

/// Best soft IoU between `coverage` and the template of `shape` (sharp or blurred).
fn template_iou(
    shape: Shape,
    radius: f32,
    centre: (f32, f32),
    window: &Window,
    coverage: &[f32],
) -> f32 {
    let mut template = rasterise(shape, radius, centre, window);
    let mut best = soft_iou(&template, coverage);
    for _ in 0..BLUR_LEVELS {
        template = box_blur(&template, window);
        best = best.max(soft_iou(&template, coverage));
    }
    best
}

/// Antialiased template of `shape` over `window` (raw coverage fractions). Pixels whose
/// four corners agree are taken as fully inside or outside; only the others are
/// supersampled.
fn rasterise(shape: Shape, radius: f32, (cx, cy): (f32, f32), window: &Window) -> Vec<f32> {
    let (w, h) = (window.width as usize, window.height as usize);
    let corners: Vec<bool> = (0..=h)
        .flat_map(|j| (0..=w).map(move |i| (i, j)))
        .map(|(i, j)| {
            shape.contains(
                window.x0 as f32 + i as f32 - cx,
                window.y0 as f32 + j as f32 - cy,
                radius,
            )
        })
        .collect();
    let n = TEMPLATE_SUPERSAMPLE;
    let step = 1.0 / n as f32;
    (0..h)
        .flat_map(|j| (0..w).map(move |i| (i, j)))
        .map(|(i, j)| {
            let inside = [
                corners[j * (w + 1) + i],
                corners[j * (w + 1) + i + 1],
                corners[(j + 1) * (w + 1) + i],
                corners[(j + 1) * (w + 1) + i + 1],
            ];
            if inside.iter().all(|c| *c) {
                return 1.0;
            }
            if !inside.iter().any(|c| *c) {
                return 0.0;
            }
            let (x, y) = (
                window.x0 as f32 + i as f32 - cx,
                window.y0 as f32 + j as f32 - cy,
            );
            let hits = (0..n * n)
                .filter(|k| {
                    let dx = x + (k % n) as f32 * step + step / 2.0;
                    let dy = y + (k / n) as f32 * step + step / 2.0;
                    shape.contains(dx, dy, radius)
                })
                .count();
            hits as f32 / (n * n) as f32
        })
        .collect()
}

/// 3 × 3 box blur of a window-sized plane (edges averaged over the pixels present).
fn box_blur(plane: &[f32], window: &Window) -> Vec<f32> {
    let (w, h) = (window.width as i64, window.height as i64);
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| {
            let (sum, count) = (-1..=1i64)
                .flat_map(|dy| (-1..=1i64).map(move |dx| (x + dx, y + dy)))
                .filter(|&(nx, ny)| nx >= 0 && ny >= 0 && nx < w && ny < h)
                .fold((0.0, 0.0), |(s, c), (nx, ny)| {
                    (s + plane[(ny * w + nx) as usize], c + 1.0)
                });
            sum / count
        })
        .collect()
}

/// Soft intersection over union of a raw template and a flattened coverage map.
fn soft_iou(template: &[f32], coverage: &[f32]) -> f32 {
    let (intersection, union) = template
        .iter()
        .zip(coverage)
        .fold((0.0, 0.0), |(i, u), (t, f)| {
            let t = flatten(*t);
            (i + t.min(*f), u + t.max(*f))
        });
    if union > 0.0 {
        intersection / union
    } else {
        0.0
    }
}
