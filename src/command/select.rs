//! `SELECT index`: the connection's database, 0 to `--databases` - 1 (see `db.rs`).

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError, Session};
use crate::node::Node;
use crate::resp::Reply;

pub fn run(node: &Node, session: &mut Session, args: &[Bytes]) -> CmdResult {
    let db = parse_i64(&args[1])?;
    match u32::try_from(db) {
        Ok(db) if db < node.config.databases => {
            session.db = db;
            session.client.set_db(db);
            Ok(Reply::ok())
        }
        _ => Err(CommandError::Other("DB index is out of range".into())),
    }
}
