build/worker/main.o: worker/main.c common/config.h common/db.h \
 /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h common/kq.h common/log.h \
 common/proc.h common/config.h worker/rules.h common/text.h \
 worker/track.h /usr/include/cjson/cJSON.h
common/config.h:
common/db.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
common/kq.h:
common/log.h:
common/proc.h:
common/config.h:
worker/rules.h:
common/text.h:
worker/track.h:
/usr/include/cjson/cJSON.h:
