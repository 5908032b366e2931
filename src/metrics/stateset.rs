//! StateSet (Enum): exactly one of a fixed list of states is set.
//! The series' one cell holds the index of the current state (initially the first).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{metric_handle, SeriesInner};
use crate::encoding::MetricType;
use crate::error::{Error, Result};

/// States: at least one, valid names, no duplicates.
pub(crate) fn check_states(states: &[String]) -> Result<()> {
    if states.is_empty() {
        return Err(Error::InvalidState(
            "a state set needs at least one state".into(),
        ));
    }
    if states.len() > crate::area::format::MAX_STATES {
        return Err(Error::InvalidState(format!(
            "{} states is too many",
            states.len()
        )));
    }
    for (i, s) in states.iter().enumerate() {
        if s.len() > crate::area::format::MAX_NAME_LEN {
            return Err(Error::InvalidState(format!(
                "state name of {} bytes is too long",
                s.len()
            )));
        }
        if states[..i].contains(s) {
            return Err(Error::InvalidState(format!("state {s:?} given twice")));
        }
    }
    Ok(())
}

/// A state-set series handle.
///
/// ```
/// use promshm::{Area, AreaOptions, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let mode = area
///     .registry()
///     .state_set(Opts::new("mode", "Serving mode."), &["normal", "degraded"])?
///     .get()?;
/// assert_eq!(mode.get(), "normal"); // the first state, until set
/// mode.set("degraded")?;
/// assert_eq!(mode.get(), "degraded");
/// assert!(mode.set("unknown").is_err());
/// # Ok::<(), promshm::Error>(())
/// ```
#[derive(Clone)]
pub struct StateSet {
    pub(crate) series: Arc<SeriesInner>,
}

metric_handle!(StateSet, MetricType::StateSet);

impl StateSet {
    /// Make `state` the current state.
    pub fn set(&self, state: &str) -> Result<()> {
        let states = &self.series.family.shape.states;
        let i = states.iter().position(|s| s == state).ok_or_else(|| {
            Error::InvalidState(format!(
                "unknown state {state:?}, expected one of {states:?}"
            ))
        })?;
        self.set_index(i)
    }

    /// Make the `i`-th state current.
    pub fn set_index(&self, i: usize) -> Result<()> {
        let states = &self.series.family.shape.states;
        if i >= states.len() {
            return Err(Error::InvalidState(format!(
                "state index {i} out of {}",
                states.len()
            )));
        }
        self.series.area().check_writable()?;
        let _w = self.series.writing();
        if let Some(c) = self.series.cell(0) {
            c.store(i as u64, Ordering::Release);
        }
        Ok(())
    }

    /// The current state.
    pub fn get(&self) -> &str {
        let states = &self.series.family.shape.states;
        let i = self
            .series
            .cell(0)
            .map(|c| c.load(Ordering::Acquire))
            .unwrap_or(0) as usize;
        states
            .get(i)
            .or(states.first())
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Render one stateset series: cell 0 is the index of the current state.
pub(crate) fn emit(
    view: &super::view::SeriesCells<'_>,
    cx: super::view::Ctx<'_, '_>,
) -> Result<super::view::Emitted> {
    use super::view::Emitted;
    let current = view.cell(0) as usize;
    let states: Vec<(&str, bool)> = cx
        .shape
        .states
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i == current))
        .collect();
    if !view.same() {
        return Ok(Emitted::Skipped);
    }
    cx.enc.point(
        cx.desc,
        cx.labels,
        &crate::encoding::Point::StateSet { states: &states },
    )?;
    Ok(Emitted::Written)
}
