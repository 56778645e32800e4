//! Creating, finding and configuring state tables (the catalog's operations that need the
//! database: a manifest commit for a new table, the hot tier's routing).

use std::sync::Arc;

use strata_dfs::{CompactionFilter, Error, Result, TableDef};

use crate::catalog::{Table, TableEntry, MAX_TABLES};
use crate::inner::Inner;
use crate::options::TableOptions;

impl Inner {
    /// Looks a table up by name.
    pub(crate) fn table(&self, name: &str) -> Option<Table> {
        self.hooks
            .tables
            .iter()
            .find(|(_, t)| &*t.name == name)
            .map(|(id, t)| self.hooks.handle(id, t.name.clone()))
    }

    /// Every table, by id.
    pub(crate) fn tables(&self) -> Vec<Table> {
        let mut v: Vec<Table> = self
            .hooks
            .tables
            .iter()
            .map(|(id, t)| self.hooks.handle(id, t.name.clone()))
            .collect();
        v.sort_by_key(|t| t.id);
        v
    }

    /// Registers a table recovered from the manifest.
    pub(crate) fn register_table(&self, id: u32, def: &TableDef) -> Result<()> {
        let options = TableOptions::decode(&def.options, &def.name)?;
        let merge = options.operator(&self.merge_ops)?;
        self.middle.set_route_prefix(id, options.prefix_len);
        self.hooks.tables.insert(
            id,
            TableEntry {
                name: def.name.as_str().into(),
                options,
                merge,
                filter: Default::default(),
            },
        )
    }

    /// Creates a table, or returns the existing one if its options are the same.
    pub(crate) fn create_table(&self, name: &str, options: TableOptions) -> Result<Table> {
        self.check_writable()?;
        options.validate()?;
        if name.is_empty() || name.len() > 255 {
            return Err(Error::invalid("table names are 1..=255 bytes"));
        }
        let _g = self.table_lock.lock();
        if let Some(t) = self.table(name) {
            // A table created before key-group fields existed matches without one (it is
            // kept whole by a key-group restore).
            let same = self.hooks.tables.get(t.id).map(|e| {
                e.options == options
                    || (e.options.key_group.is_none()
                        && e.options
                            == TableOptions {
                                key_group: None,
                                ..options.clone()
                            })
            });
            return match same {
                Some(true) => Ok(t),
                _ => Err(Error::invalid(format!(
                    "table {name:?} exists with other options"
                ))),
            };
        }
        let merge = options.operator(&self.merge_ops)?;
        let id = self
            .hooks
            .tables
            .iter()
            .map(|(id, _)| id)
            .max()
            .map_or(1, |m| m + 1);
        if id >= MAX_TABLES {
            return Err(Error::invalid(format!("at most {} tables", MAX_TABLES - 1)));
        }
        self.middle.define_table(
            id,
            TableDef {
                name: name.to_string(),
                options: options.encode(),
            },
        )?;
        let name: Arc<str> = name.into();
        self.middle.set_route_prefix(id, options.prefix_len);
        self.hooks.tables.insert(
            id,
            TableEntry {
                name: name.clone(),
                options,
                merge,
                filter: Default::default(),
            },
        )?;
        Ok(self.hooks.handle(id, name))
    }

    /// Installs (or removes) the compaction filter of `table`.
    pub(crate) fn set_compaction_filter(
        &self,
        table: &Table,
        filter: Option<Arc<dyn CompactionFilter>>,
    ) -> Result<()> {
        *self.hooks.entry(table)?.filter.write() = filter;
        Ok(())
    }
}
