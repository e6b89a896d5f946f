//! Keeping a moved session's type and table OIDs as its client first learned them.
//!
//! A restore gives every user type and table new OIDs, and drivers cache OIDs per
//! connection (asyncpg checks the field types inside binary records, pgjdbc sends cached
//! type OIDs in Parse, tokio-postgres looks types up by OID). A session's home is the side
//! it logged in to; while another side serves it, the proxy rewrites, so that its client
//! sees home OIDs only:
//!
//! - [`catalog`]: one server's user types, relations and columns, read in one query.
//! - [`map`]: the bijection between two servers' OIDs by schema-qualified name, and a
//!   session's [`Translator`], which gives OIDs only the serving side has synthetic ones.
//! - [`values`]: OIDs inside binary arrays and composites, and OID values.
//! - [`messages`]: RowDescription, ParameterDescription, Parse, Bind and DataRow.
//! - [`shapes`]: which statement or portal each answer belongs to, for the columns of a
//!   DataRow and the parameters of a Bind.
//!
//! Pure: no I/O.

pub mod catalog;
pub mod map;
pub mod messages;
pub mod shapes;
pub mod values;

pub use catalog::{Catalog, CatalogError, Kind, CATALOG_QUERY, FIRST_USER_OID};
pub use map::{OidMap, Translator, FIRST_SYNTHETIC_OID};
