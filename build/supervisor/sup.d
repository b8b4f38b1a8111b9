build/supervisor/sup.o: supervisor/sup.c supervisor/sup.h common/config.h \
 common/http.h common/log.h supervisor/pgembed.h common/proc.h \
 common/config.h /usr/include/cjson/cJSON.h
supervisor/sup.h:
common/config.h:
common/http.h:
common/log.h:
supervisor/pgembed.h:
common/proc.h:
common/config.h:
/usr/include/cjson/cJSON.h:
