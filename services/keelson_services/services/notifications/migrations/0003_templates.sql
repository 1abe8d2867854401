-- Templates managed through the admin API: versions per (name, channel, locale), one of them
-- active. Version 1 of locale `en` is seeded from the package's files at start-up.
CREATE TABLE templates (
    name       text        NOT NULL,
    channel    text        NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    locale     text        NOT NULL,
    version    integer     NOT NULL CHECK (version > 0),
    subject    text,
    body       text        NOT NULL,
    html       text,
    active     boolean     NOT NULL DEFAULT false,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, channel, locale, version)
);
CREATE UNIQUE INDEX templates_one_active ON templates (name, channel, locale) WHERE active;

-- Every change: who, when, what. Never updated or deleted.
CREATE TABLE template_audit (
    id               bigserial   PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    actor            text        NOT NULL,
    action           text        NOT NULL CHECK (action IN ('seed', 'create', 'activate')),
    name             text        NOT NULL,
    channel          text        NOT NULL,
    locale           text        NOT NULL,
    version          integer     NOT NULL,
    previous_version integer
);

-- Which version in which locale a notification was rendered with.
ALTER TABLE notifications ADD COLUMN locale text, ADD COLUMN template_version integer;
