build/supervisor/migrate.o: supervisor/migrate.c supervisor/migrate.h \
 common/config.h common/db.h /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h common/log.h common/proc.h \
 common/config.h /usr/include/cjson/cJSON.h
supervisor/migrate.h:
common/config.h:
common/db.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
common/log.h:
common/proc.h:
common/config.h:
/usr/include/cjson/cJSON.h:
