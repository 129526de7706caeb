// SPDX-License-Identifier: Apache-2.0
/**
 * Versioned schema migrations; index i moves the schema from version i to i+1. Never edit a shipped
 * migration: append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // v1: the tables the server needs from its first release.
  `
  CREATE TABLE groups (
    tenant TEXT NOT NULL,
    group_key TEXT NOT NULL,
    is_static INTEGER NOT NULL,
    config TEXT NOT NULL,
    runtime_config_hash TEXT NOT NULL,
    infra_config_hash TEXT NOT NULL,
    hashes_updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, group_key)
  );
  CREATE TABLE config_state (
    name TEXT PRIMARY KEY,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    source TEXT NOT NULL,
    loaded_at INTEGER NOT NULL
  );
  CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    group_key TEXT NOT NULL,
    on_demand INTEGER NOT NULL DEFAULT 0,
    provider_id TEXT,
    provider_at INTEGER,
    provider_state TEXT,
    subnet_id TEXT,
    instance_type TEXT,
    hostname TEXT,
    ip4 TEXT,
    ip6 TEXT,
    nonce TEXT NOT NULL UNIQUE,
    issued_at INTEGER NOT NULL,
    instance_pub TEXT,
    cert_serial TEXT,
    registered_at INTEGER,
    health_at INTEGER,
    health TEXT,
    config_hash TEXT,
    infra_config_hash TEXT NOT NULL,
    unhealthy_at INTEGER,
    unhealthy_reason TEXT,
    drain_started_at INTEGER,
    drain_deadline_at INTEGER,
    drain_reason TEXT,
    drain_acked_at INTEGER,
    replaced_by TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
  );
  CREATE INDEX instances_group ON instances (tenant, group_key) WHERE deleted_at IS NULL;
  CREATE TABLE health_reports (
    instance_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    report TEXT NOT NULL
  );
  CREATE INDEX health_reports_instance ON health_reports (instance_id, received_at);
  CREATE TABLE public_keys (
    instance_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    certificate_serial TEXT,
    certificate_issued_at INTEGER,
    PRIMARY KEY (instance_id, filename)
  );
  CREATE TABLE lb_instances (
    lb_key TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (lb_key, instance_id)
  );
  CREATE TABLE operators (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    public_key TEXT NOT NULL,
    cert_serial TEXT,
    registered_at INTEGER NOT NULL
  );
  CREATE TABLE decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX decisions_instance ON decisions (instance_id, seq);
  `,
  // v2: agent service — health history pruned by age, LB registration errors, and the
  // certificates issued to agents (serial and expiry, so they are renewed before they lapse).
  `
  CREATE INDEX health_reports_received ON health_reports (received_at);
  ALTER TABLE lb_instances ADD COLUMN last_error TEXT;
  CREATE TABLE issued_certificates (
    instance_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    certificate_name TEXT NOT NULL,
    key_file TEXT NOT NULL,
    serial TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (instance_id, filename)
  );
  `,
  // v3: reconciler — how an unhealthy instance leaves (with or without drain), spot/preemption
  // notices, and decision history pruned by age. (No index on deleted_at: the reconciler's pass
  // reads nearly every row, and a full scan beats index lookups for that.)
  `
  ALTER TABLE instances ADD COLUMN unhealthy_skip_drain INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE instances ADD COLUMN spot_notice_at INTEGER;
  ALTER TABLE instances ADD COLUMN spot_deadline_at INTEGER;
  CREATE INDEX decisions_at ON decisions (at);
  `,
];
