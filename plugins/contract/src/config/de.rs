//! A serde `Deserializer` over [`ConfigNode`] that reports every problem it can find.
//!
//! Ordinary serde deserializers stop at the first error. This one keeps going where it
//! safely can, so one `pingway validate` run lists all the mistakes in a file:
//!
//! - every unknown field of every struct is reported (the deserializer knows the field
//!   list serde passes to `deserialize_struct`, and drops unknown keys itself);
//! - an element of a list that fails is reported and skipped, and its siblings are still
//!   checked;
//! - inside one struct, the first field whose value is wrong is reported (serde's derived
//!   code gives no way to continue past it).
//!
//! Every problem carries its field path and file position. Structs are strict: unknown
//! fields are always errors, whether or not the type says `deny_unknown_fields`.

use std::cell::RefCell;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::diagnostic::{Diagnostic, Location};
use super::node::{ConfigNode, MapKey, NodeValue, Resolved, Scalar};

/// Deserializes `T` from `node`, whose field path is `path` (empty for a document root).
///
/// Returns every problem found, each with its full field path and position.
pub fn from_node<T: DeserializeOwned>(node: &ConfigNode, path: &str) -> Result<T, Vec<Diagnostic>> {
    let sink = Sink::default();
    let root = Path::Root(path);
    let _collecting = CollectingGuard::enter();
    let result = T::deserialize(NodeDeserializer {
        node,
        path: &root,
        sink: &sink,
    });
    let diags = sink.0.into_inner();
    match result {
        Ok(v) if diags.is_empty() => Ok(v),
        Ok(_) => Err(diags),
        Err(e) => {
            if diags.is_empty() {
                // Cannot happen: every error is recorded where it arises. Keep the message.
                Err(vec![Diagnostic::new(path, e.message).at(node.location)])
            } else {
                Err(diags)
            }
        }
    }
}

/// Collected problems.
#[derive(Default)]
struct Sink(RefCell<Vec<Diagnostic>>);

/// The field path of the node being deserialized, as a chain to its parents so that no
/// string is built unless a problem is recorded.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root(&'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(p) => f.write_str(p),
            Path::Key(parent, key) => {
                if matches!(parent, Path::Root("")) {
                    f.write_str(key)
                } else {
                    write!(f, "{parent}.{key}")
                }
            }
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// The error passed between nested deserializers. Once a problem has been written to the
/// sink it is marked `recorded`, so parents do not report it again.
#[derive(Debug)]
pub struct DeError {
    message: String,
    recorded: bool,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            recorded: false,
        }
    }
}

struct NodeDeserializer<'a> {
    node: &'a ConfigNode,
    path: &'a Path<'a>,
    sink: &'a Sink,
}

impl<'a> NodeDeserializer<'a> {
    /// Records `err` against this node unless a deeper node already did.
    fn record(&self, mut err: DeError) -> DeError {
        if !err.recorded {
            self.sink.0.borrow_mut().push(Diagnostic {
                path: self.path.to_string(),
                message: err.message.clone(),
                location: self.node.location,
            });
            err.recorded = true;
        }
        err
    }

    fn record_at(&self, path: String, message: String, location: Option<Location>) {
        self.sink.0.borrow_mut().push(Diagnostic {
            path,
            message,
            location,
        });
    }

    fn scalar(&self) -> Option<&'a Scalar> {
        match &self.node.value {
            NodeValue::Scalar(s) => Some(s),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        self.scalar().is_some_and(|s| s.resolve() == Resolved::Null)
    }

    /// The serde "unexpected" description of this node, for type errors.
    fn unexpected_error(&self, exp: &dyn de::Expected) -> DeError {
        match &self.node.value {
            NodeValue::Scalar(s) => match s.resolve() {
                Resolved::Null => de::Error::invalid_type(de::Unexpected::Unit, exp),
                Resolved::Bool(b) => de::Error::invalid_type(de::Unexpected::Bool(b), exp),
                Resolved::Int(i) => de::Error::invalid_type(de::Unexpected::Signed(i), exp),
                Resolved::UInt(u) => de::Error::invalid_type(de::Unexpected::Unsigned(u), exp),
                Resolved::Float(f) => de::Error::invalid_type(de::Unexpected::Float(f), exp),
                Resolved::Str(t) => de::Error::invalid_type(de::Unexpected::Str(t), exp),
            },
            NodeValue::Seq(_) => de::Error::invalid_type(de::Unexpected::Seq, exp),
            NodeValue::Map(_) => de::Error::invalid_type(de::Unexpected::Map, exp),
        }
    }

    fn child<'c>(&'c self, node: &'c ConfigNode, path: &'c Path<'c>) -> NodeDeserializer<'c> {
        NodeDeserializer {
            node,
            path,
            sink: self.sink,
        }
    }

    fn any<'de, V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            NodeValue::Scalar(s) => match s.resolve() {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => visitor.visit_i64(i),
                Resolved::UInt(u) => visitor.visit_u64(u),
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str(_) => visitor.visit_str(&s.text),
            },
            NodeValue::Seq(items) => self.seq(items, visitor),
            NodeValue::Map(entries) => visitor.visit_map(EntriesAccess {
                de: self,
                entries: entries.iter(),
                pending: None,
                only: None,
            }),
        }
    }

    fn seq<'de, V: Visitor<'de>>(
        &self,
        items: &'a [ConfigNode],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_seq(ItemsAccess {
            de: self,
            items,
            next: 0,
        })
    }

    /// Numbers: plain scalars as resolved; quoted scalars that spell a number are accepted
    /// too (`minute: "5"` is a common way to write YAML generated by tools).
    fn number<'de, V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, DeError> {
        let Some(s) = self.scalar() else {
            return Err(self.unexpected_error(&visitor));
        };
        let resolved = if s.plain {
            s.resolve()
        } else {
            Scalar {
                text: s.text.clone(),
                plain: true,
            }
            .resolve()
            .into_owned_number()
            .unwrap_or(Resolved::Str(&s.text))
        };
        match resolved {
            Resolved::Int(i) => visitor.visit_i64(i),
            Resolved::UInt(u) => visitor.visit_u64(u),
            Resolved::Float(f) => visitor.visit_f64(f),
            _ => Err(self.unexpected_error(&visitor)),
        }
    }
}

impl Resolved<'_> {
    fn into_owned_number(self) -> Option<Resolved<'static>> {
        match self {
            Resolved::Int(i) => Some(Resolved::Int(i)),
            Resolved::UInt(u) => Some(Resolved::UInt(u)),
            Resolved::Float(f) => Some(Resolved::Float(f)),
            _ => None,
        }
    }
}

macro_rules! number_methods {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                let r = self.number(visitor);
                r.map_err(|e| self.record(e))
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = self.any(visitor);
        r.map_err(|e| self.record(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.scalar() {
            Some(s) => match s.resolve() {
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Str("true") => visitor.visit_bool(true),
                Resolved::Str("false") => visitor.visit_bool(false),
                _ => Err(self.unexpected_error(&visitor)),
            },
            None => Err(self.unexpected_error(&visitor)),
        };
        r.map_err(|e| self.record(e))
    }

    number_methods!(
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64
    );

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Any non-null scalar reads as its text: `x-version: 2` is the header value "2".
        let r = match self.scalar() {
            Some(s) if s.resolve() != Resolved::Null => visitor.visit_str(&s.text),
            _ => Err(self.unexpected_error(&visitor)),
        };
        r.map_err(|e| self.record(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = if self.is_null() {
            visitor.visit_unit()
        } else {
            Err(self.unexpected_error(&visitor))
        };
        r.map_err(|e| self.record(e))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = self.path;
        let r = visitor.visit_newtype_struct(self.child(self.node, path));
        r.map_err(|e| self.record(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::Seq(items) => self.seq(items, visitor),
            // `plugins:` with nothing after it is an empty list.
            _ if self.is_null() => self.seq(&[], visitor),
            _ => Err(self.unexpected_error(&visitor)),
        };
        r.map_err(|e| self.record(e))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::Map(entries) => visitor.visit_map(EntriesAccess {
                de: &self,
                entries: entries.iter(),
                pending: None,
                only: None,
            }),
            _ if self.is_null() => visitor.visit_map(EntriesAccess {
                de: &self,
                entries: [].iter(),
                pending: None,
                only: None,
            }),
            _ => Err(self.unexpected_error(&visitor)),
        };
        r.map_err(|e| self.record(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::Map(entries) => {
                for (key, _) in entries {
                    if !fields.contains(&key.name.as_str()) {
                        let e: DeError = de::Error::unknown_field(&key.name, fields);
                        let path = Path::Key(self.path, &key.name).to_string();
                        self.record_at(path, e.message, key.location.or(self.node.location));
                    }
                }
                visitor.visit_map(EntriesAccess {
                    de: &self,
                    entries: entries.iter(),
                    pending: None,
                    only: Some(fields),
                })
            }
            // `config:` with nothing after it is an empty mapping.
            _ if self.is_null() => visitor.visit_map(EntriesAccess {
                de: &self,
                entries: [].iter(),
                pending: None,
                only: Some(fields),
            }),
            _ => {
                let _ = name;
                Err(self.unexpected_error(&visitor))
            }
        };
        r.map_err(|e| self.record(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::Scalar(s) if s.resolve() != Resolved::Null => {
                visitor.visit_enum(s.text.as_str().into_deserializer())
            }
            NodeValue::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                visitor.visit_enum(TaggedVariant {
                    de: &self,
                    key,
                    value,
                })
            }
            _ => Err(self.unexpected_error(&visitor)),
        };
        r.map_err(|e| self.record(e))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// Walks a list. The position advances before each element is read, so a visitor that
/// continues after a failed element (see [`lenient_vec`]) checks the next one.
struct ItemsAccess<'a, 'b> {
    de: &'b NodeDeserializer<'a>,
    items: &'a [ConfigNode],
    next: usize,
}

impl<'de> SeqAccess<'de> for ItemsAccess<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.get(self.next) else {
            return Ok(None);
        };
        crate::pace::point();
        let path = Path::Index(self.de.path, self.next);
        self.next += 1;
        seed.deserialize(self.de.child(node, &path)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

thread_local! {
    /// Depth of [`from_node`] calls on this thread. While it is non-zero, every error is
    /// already recorded in a sink, so the lenient helpers may swallow errors and go on.
    static COLLECTING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn collecting() -> bool {
    COLLECTING.with(|c| c.get() > 0)
}

/// Marks this thread as collecting for the guard's lifetime (panic-safe).
struct CollectingGuard;

impl CollectingGuard {
    fn enter() -> Self {
        COLLECTING.with(|c| c.set(c.get() + 1));
        CollectingGuard
    }
}

impl Drop for CollectingGuard {
    fn drop(&mut self) {
        COLLECTING.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Deserializes a list, checking every element even after one fails, so that all the
/// problems in a list of routes (say) are reported in one run. Use it with
/// `#[serde(default, deserialize_with = "pingway_plugins::config::lenient_vec")]`.
///
/// With other deserializers it behaves exactly like the standard `Vec` impl.
pub fn lenient_vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: de::Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    struct LenientVisitor<T>(std::marker::PhantomData<T>);

    impl<'de, T: de::Deserialize<'de>> Visitor<'de> for LenientVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            let lenient = collecting();
            loop {
                match seq.next_element::<T>() {
                    Ok(Some(v)) => out.push(v),
                    Ok(None) => break,
                    // Recorded by Pingway's deserializer, which can go on to the next
                    // element; the caller still gets an error because the sink is not
                    // empty.
                    Err(_) if lenient => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }
    }

    deserializer.deserialize_seq(LenientVisitor(std::marker::PhantomData))
}

/// Deserializes a field, using its default value after a (recorded) error so that the
/// fields after it are still checked. For top-level sections whose problems should not
/// hide the problems of the next section.
///
/// With other deserializers it behaves exactly like `T::deserialize`.
pub fn lenient_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: de::Deserializer<'de>,
    T: de::Deserialize<'de> + Default,
{
    let lenient = collecting();
    match T::deserialize(deserializer) {
        Ok(v) => Ok(v),
        Err(_) if lenient => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Walks a mapping's entries. For structs (`only` set), unknown keys were already
/// reported and are skipped here.
struct EntriesAccess<'a, 'b> {
    de: &'b NodeDeserializer<'a>,
    entries: std::slice::Iter<'a, (MapKey, ConfigNode)>,
    pending: Option<&'a (MapKey, ConfigNode)>,
    only: Option<&'static [&'static str]>,
}

impl<'de> MapAccess<'de> for EntriesAccess<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        for entry in self.entries.by_ref() {
            crate::pace::point();
            if let Some(fields) = self.only {
                if !fields.contains(&entry.0.name.as_str()) {
                    continue;
                }
            }
            self.pending = Some(entry);
            let key: de::value::StrDeserializer<'_, DeError> =
                entry.0.name.as_str().into_deserializer();
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, node)) = self.pending.take() else {
            return Err(de::Error::custom("value requested before key"));
        };
        let path = Path::Key(self.de.path, &key.name);
        seed.deserialize(self.de.child(node, &path))
    }
}

/// `{variant: value}` for externally tagged enums.
struct TaggedVariant<'a, 'b> {
    de: &'b NodeDeserializer<'a>,
    key: &'a MapKey,
    value: &'a ConfigNode,
}

impl<'de> EnumAccess<'de> for TaggedVariant<'_, '_> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let key: de::value::StrDeserializer<'_, DeError> =
            self.key.name.as_str().into_deserializer();
        let v = seed.deserialize(key)?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for TaggedVariant<'_, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        let path = Path::Key(self.de.path, &self.key.name);
        de::Deserialize::deserialize(self.de.child(self.value, &path))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        let path = Path::Key(self.de.path, &self.key.name);
        seed.deserialize(self.de.child(self.value, &path))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        let path = Path::Key(self.de.path, &self.key.name);
        de::Deserializer::deserialize_seq(self.de.child(self.value, &path), visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = Path::Key(self.de.path, &self.key.name);
        de::Deserializer::deserialize_map(self.de.child(self.value, &path), visitor)
    }
}
