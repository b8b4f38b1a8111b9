build/supervisor/bench.o: supervisor/bench.c supervisor/bench.h \
 common/config.h common/proc.h common/config.h common/token.h common/ws.h \
 /usr/include/cjson/cJSON.h
supervisor/bench.h:
common/config.h:
common/proc.h:
common/config.h:
common/token.h:
common/ws.h:
/usr/include/cjson/cJSON.h:
