build/supervisor/main.o: supervisor/main.c supervisor/bench.h \
 common/config.h supervisor/broker.h common/log.h supervisor/migrate.h \
 supervisor/pgembed.h common/proc.h common/config.h supervisor/sup.h \
 common/token.h supervisor/topics.h /usr/include/cjson/cJSON.h
supervisor/bench.h:
common/config.h:
supervisor/broker.h:
common/log.h:
supervisor/migrate.h:
supervisor/pgembed.h:
common/proc.h:
common/config.h:
supervisor/sup.h:
common/token.h:
supervisor/topics.h:
/usr/include/cjson/cJSON.h:
