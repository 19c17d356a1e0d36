//! Conversions between Python values (str, `ipaddress`, `datetime`) and the core's types.
//!
//! Every conversion of caller input refuses wrong types with `TypeError` and bad values with a
//! `ValueError` subclass naming the (shortened, token-redacted) value: never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDateTime, PyDelta, PyDeltaAccess, PyInt, PyString, PyTuple, PyType, PyTzInfo,
};

use crate::errors;

static IPV4_ADDRESS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static IPV6_ADDRESS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static IPV4_NETWORK: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static IPV6_NETWORK: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn ipv4_address(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    IPV4_ADDRESS.import(py, "ipaddress", "IPv4Address")
}
fn ipv6_address(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    IPV6_ADDRESS.import(py, "ipaddress", "IPv6Address")
}
fn ipv4_network(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    IPV4_NETWORK.import(py, "ipaddress", "IPv4Network")
}
fn ipv6_network(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    IPV6_NETWORK.import(py, "ipaddress", "IPv6Network")
}

/// The name of `obj`'s type, for error messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// At most 64 characters of `text`, anything token-like redacted: the form in which bad input
/// is echoed.
///
/// Every echo of caller input goes through here (or `quoted`), and the order matters: tokens
/// are redacted in the *whole* text first, and only then is it cut. Cutting first can leave a
/// token that ran past the cut a few characters short, which `redact_tokens` no longer
/// recognises as a token, yet whose missing characters are its checksum, recomputable from the
/// rest. For the same reason the redaction is the core's `redact_token_like` (as in the core's
/// own error echoes): it also covers tokens the caller cut short or glued to more text.
pub(crate) fn shorten(text: &str) -> String {
    let redacted = sessionward_core::redact_token_like(text);
    let mut chars = redacted.chars();
    let mut short: String = chars.by_ref().take(64).collect();
    if chars.next().is_some() {
        short.push('…');
    }
    short
}

fn type_error(field: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "{field}: expected {expected}, got {}",
        type_name(obj)
    ))
}

/// A `str` argument as UTF-8; `TypeError` for other types, `InvalidInput` for strings that are
/// not valid Unicode (lone surrogates).
pub(crate) fn str_arg<'a>(field: &str, obj: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    let text = obj
        .cast::<PyString>()
        .map_err(|_| type_error(field, "str", obj))?;
    text.to_str()
        .map_err(|_| errors::invalid_input(obj.py(), format!("{field}: not valid Unicode text")))
}

/// An IP address given as `str` or `ipaddress.IPv4Address`/`IPv6Address`. IPv4-mapped IPv6
/// addresses are canonicalised by the core.
pub(crate) fn ip_arg(obj: &Bound<'_, PyAny>) -> PyResult<IpAddr> {
    let py = obj.py();
    if let Ok(text) = obj.cast::<PyString>() {
        let text = text
            .to_str()
            .map_err(|_| errors::invalid_input(py, "ip: not valid Unicode text".to_owned()))?;
        if let Some(v4) = dotted_quad(text.as_bytes()) {
            return Ok(IpAddr::V4(v4));
        }
        return sessionward_core::parse_ip(text).map_err(|err| errors::core_error(py, err));
    }
    if obj.is_instance(ipv4_address(py)?)? || obj.is_instance(ipv6_address(py)?)? {
        let packed = obj.getattr(pyo3::intern!(py, "packed"))?;
        let packed = packed.cast::<PyBytes>()?.as_bytes();
        if let Ok(v4) = <[u8; 4]>::try_from(packed) {
            return Ok(IpAddr::V4(Ipv4Addr::from(v4)));
        }
        if let Ok(v6) = <[u8; 16]>::try_from(packed) {
            // `packed` drops a zone id (`fe80::1%eth0`): refuse it here as the core refuses
            // the same text, so that an address object cannot spell what a string cannot.
            if !obj.getattr(pyo3::intern!(py, "scope_id"))?.is_none() {
                return Err(errors::invalid_input(
                    py,
                    format!(
                        "ip: {} has a zone id: zone ids are refused, pass the address without it",
                        quoted(&obj.str()?.to_cow()?)
                    ),
                ));
            }
            return Ok(IpAddr::V6(Ipv6Addr::from(v6)).to_canonical());
        }
    }
    Err(type_error(
        "ip",
        "str, ipaddress.IPv4Address or ipaddress.IPv6Address",
        obj,
    ))
}

/// The common case of an address argument, `a.b.c.d`, parsed without the general parser (which
/// cost 7 % of a single `validate` call): `None` unless `text` is four decimal numbers of one to
/// three digits, 0 to 255, without leading zeros, joined by dots. Every text accepted here is
/// accepted by `sessionward_core::parse_ip` (std's parser) as the same address; everything else
/// goes to that parser, which accepts or refuses it with its own message.
fn dotted_quad(text: &[u8]) -> Option<Ipv4Addr> {
    if !(7..=15).contains(&text.len()) {
        return None;
    }
    let mut octets = [0_u8; 4];
    let mut at = 0;
    for (index, octet) in octets.iter_mut().enumerate() {
        if index > 0 {
            if text.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let start = at;
        let mut value = 0_u32;
        while at - start < 3 {
            match text.get(at) {
                Some(digit @ b'0'..=b'9') => value = value * 10 + u32::from(digit - b'0'),
                _ => break,
            }
            at += 1;
        }
        let digits = at - start;
        if digits == 0 || (digits > 1 && text[start] == b'0') {
            return None;
        }
        *octet = u8::try_from(value).ok()?;
    }
    (at == text.len()).then_some(Ipv4Addr::from(octets))
}

/// A CIDR range given as `str` or `ipaddress.IPv4Network`/`IPv6Network`, for setting `field`.
pub(crate) fn cidr_arg(field: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<IpNet> {
    let py = obj.py();
    let text = if obj.is_instance_of::<PyString>() {
        str_arg(field, obj)?.to_owned()
    } else if obj.is_instance(ipv4_network(py)?)? || obj.is_instance(ipv6_network(py)?)? {
        obj.str()?.to_str()?.to_owned()
    } else {
        return Err(type_error(
            field,
            "str, ipaddress.IPv4Network or ipaddress.IPv6Network",
            obj,
        ));
    };
    sessionward_core::parse_cidr(field, &text).map_err(|err| errors::core_error(py, err))
}

/// A list of CIDR ranges (any iterable but a bare string).
pub(crate) fn cidr_list(field: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<IpNet>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{field}: expected a list of ranges, got a single str (wrap it in a list)"
        )));
    }
    let iter = obj
        .try_iter()
        .map_err(|_| type_error(field, "an iterable of CIDR ranges", obj))?;
    let mut ranges = Vec::new();
    for item in iter {
        ranges.push(cidr_arg(field, &item?)?);
        if ranges.len() > sessionward_core::MAX_RANGES {
            break; // the core refuses the count with its own message
        }
    }
    Ok(ranges)
}

/// A list of names given as any iterable of `str` but a bare `str` (which would otherwise be
/// read as a list of its characters): `TypeError` naming the field, or the item, otherwise.
/// `what` says what the names are, for the message (`"scope names"`).
pub(crate) fn str_list(field: &str, what: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let expected = format!("an iterable of str ({what})");
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{field}: expected {expected}, got a single str (wrap it in a list)"
        )));
    }
    let iter = obj
        .try_iter()
        .map_err(|_| type_error(field, &expected, obj))?;
    let mut names = Vec::new();
    for (index, item) in iter.enumerate() {
        names.push(str_arg(&format!("{field}[{index}]"), &item?)?.to_owned());
    }
    Ok(names)
}

/// A source filter: one address (str or `ipaddress` address: a /32 or /128) or a range.
pub(crate) fn source_arg(obj: &Bound<'_, PyAny>) -> PyResult<IpNet> {
    let py = obj.py();
    if let Ok(text) = obj.cast::<PyString>() {
        let text = text
            .to_str()
            .map_err(|_| errors::invalid_input(py, "ip: not valid Unicode text".to_owned()))?;
        if text.contains('/') {
            return sessionward_core::parse_cidr("ip", text)
                .map_err(|err| errors::core_error(py, err));
        }
        return sessionward_core::parse_ip(text)
            .map(IpNet::from)
            .map_err(|err| errors::core_error(py, err));
    }
    if obj.is_instance(ipv4_network(py)?)? || obj.is_instance(ipv6_network(py)?)? {
        return cidr_arg("ip", obj);
    }
    ip_arg(obj).map(IpNet::from)
}

static IP_ADDRESS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static IP_NETWORK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An address as an `ipaddress.IPv4Address` / `IPv6Address`.
pub(crate) fn ip_object(py: Python<'_>, ip: IpAddr) -> PyResult<Bound<'_, PyAny>> {
    match ip {
        IpAddr::V4(v4) => ipv4_address(py)?.call1((u32::from(v4),)),
        IpAddr::V6(_) => IP_ADDRESS
            .import(py, "ipaddress", "ip_address")?
            .call1((ip.to_string(),)),
    }
}

/// A range as an `ipaddress.IPv4Network` / `IPv6Network`.
pub(crate) fn network_object<'py>(py: Python<'py>, net: &IpNet) -> PyResult<Bound<'py, PyAny>> {
    IP_NETWORK
        .import(py, "ipaddress", "ip_network")?
        .call1((net.to_string(),))
}

/// A `datetime.timedelta` as a `Duration`; `TypeError` for other types, `SettingsError` for
/// negative values.
pub(crate) fn duration_arg(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let delta = obj
        .cast::<PyDelta>()
        .map_err(|_| type_error(field, "datetime.timedelta", obj))?;
    let days = delta.get_days();
    if days < 0 {
        return Err(errors::settings_error(
            obj.py(),
            format!("{field}: {} is negative", shorten(&obj.str()?.to_cow()?)),
        ));
    }
    let seconds =
        u64::from(days.unsigned_abs()) * 86_400 + u64::from(delta.get_seconds().unsigned_abs());
    Ok(Duration::from_secs(seconds)
        + Duration::from_micros(u64::from(delta.get_microseconds().unsigned_abs())))
}

/// A `Duration` as a `datetime.timedelta`.
pub(crate) fn timedelta(py: Python<'_>, duration: Duration) -> PyResult<Bound<'_, PyDelta>> {
    let secs = duration.as_secs();
    let days = i32::try_from(secs / 86_400).unwrap_or(i32::MAX);
    PyDelta::new(
        py,
        days,
        (secs % 86_400) as i32,
        duration.subsec_micros() as i32,
        false,
    )
}

/// Whole seconds since the Unix epoch as a timezone-aware UTC `datetime`.
pub(crate) fn datetime(py: Python<'_>, seconds: u64) -> PyResult<Bound<'_, PyDateTime>> {
    let utc = PyTzInfo::utc(py)?;
    PyDateTime::from_timestamp(py, seconds as f64, Some(&utc))
}

/// The latest time a clock may be set to, in seconds since the Unix epoch
/// (2106-02-05T06:28:15Z).
///
/// The engine keeps times as 32-bit seconds (up to 2106-02-07T06:28:15Z) and clamps later
/// readings, so a clock past that range refuses every new session as expired or silently cuts
/// its deadlines. A session started at this second still fits, with its longest possible
/// length (24 h) and the longest tombstone retention after it (24 h).
pub(crate) const MAX_TIMESTAMP: u64 = u32::MAX as u64 - 2 * 86_400;

/// `InvalidInput` for a time outside `0..=MAX_TIMESTAMP`, naming the field, the (shortened)
/// value and the allowed range.
pub(crate) fn timestamp_range_error(py: Python<'_>, field: &str, shown: &str) -> PyErr {
    errors::invalid_input(
        py,
        format!(
            "{field}: {} is outside the allowed range 0..={MAX_TIMESTAMP} (seconds since \
             1970, up to {})",
            shorten(shown),
            iso(MAX_TIMESTAMP)
        ),
    )
}

/// A point in time given as a timezone-aware `datetime` or whole seconds since the Unix epoch
/// (an `int`), within `0..=MAX_TIMESTAMP`. Naive datetimes are refused: their meaning depends
/// on the machine.
pub(crate) fn timestamp_arg(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    let py = obj.py();
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        return obj
            .extract::<u64>()
            .ok()
            .filter(|&seconds| seconds <= MAX_TIMESTAMP)
            .ok_or_else(|| {
                let shown = obj.str().map(|s| s.to_string()).unwrap_or_default();
                timestamp_range_error(py, field, &shown)
            });
    }
    let moment = obj
        .cast::<PyDateTime>()
        .map_err(|_| type_error(field, "datetime.datetime or int seconds", obj))?;
    if moment.getattr(pyo3::intern!(py, "tzinfo"))?.is_none()
        || moment
            .call_method0(pyo3::intern!(py, "utcoffset"))?
            .is_none()
    {
        return Err(errors::invalid_input(
            py,
            format!(
                "{field}: naive datetime {}: pass a timezone-aware datetime (tzinfo=timezone.utc)",
                shorten(&moment.str()?.to_cow()?)
            ),
        ));
    }
    let seconds: f64 = moment
        .call_method0(pyo3::intern!(py, "timestamp"))?
        .extract()?;
    // Sub-second parts are dropped (`as` truncates toward zero, and the value is in range).
    if !(0.0..(MAX_TIMESTAMP + 1) as f64).contains(&seconds) {
        return Err(timestamp_range_error(py, field, &moment.str()?.to_cow()?));
    }
    Ok(seconds as u64)
}

/// A tuple of `ipaddress` networks.
pub(crate) fn network_tuple<'py>(
    py: Python<'py>,
    ranges: &[IpNet],
) -> PyResult<Bound<'py, PyTuple>> {
    let objects = ranges
        .iter()
        .map(|net| network_object(py, net))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, objects)
}

/// Seconds since the Unix epoch as `2023-11-14T22:13:20Z`, for reprs.
pub(crate) fn iso(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// A Python-style single-quoted literal of `text` (shortened, tokens redacted), for reprs.
pub(crate) fn quoted(text: &str) -> String {
    let mut out = String::from("'");
    for c in shorten(text).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}
